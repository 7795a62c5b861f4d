"""A process that holds one or more open files of each kind lsof tells
apart, prints "ready" and waits until its stdin closes. tests/lsof.rs runs
it as an unused uid and counts its files with lsof and with carbyne."""
import os, socket, time, select, mmap, tempfile, sys
keep=[open('/etc/hostname'), open('/etc/passwd')]
keep.append(os.open('/', os.O_RDONLY))
keep.append(os.pipe())
s4=socket.socket(); s4.bind(('127.0.0.1',0)); s4.listen()
s6=socket.socket(socket.AF_INET6); s6.bind(('::1',0)); s6.listen()
u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1',0))
loose=[socket.socket(), socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)]
ux=socket.socket(socket.AF_UNIX); ux.bind('\0carbyne-filestat-%d' % os.getpid())
pair=socket.socketpair()
nl=socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); nl.bind((0,0))
ep=select.epoll()
t=tempfile.TemporaryFile(dir='/tmp'); t.write(b'x'*8192); t.flush()
m=mmap.mmap(t.fileno(), 8192)
keep.append(open('/dev/null'))
# A mapped file and a unix socket whose names are not UTF-8.
odd_dir = tempfile.mkdtemp(dir='/tmp')
odd = open(os.path.join(os.fsencode(odd_dir), b'map\xff'), 'wb+')
odd.write(b'y' * 4096)
odd.flush()
odd_map = mmap.mmap(odd.fileno(), 4096)
odd.close()  # mapped still; nothing left behind in /tmp
os.unlink(os.path.join(os.fsencode(odd_dir), b'map\xff'))
os.rmdir(odd_dir)
odd_sock = socket.socket(socket.AF_UNIX)
odd_sock.bind(b'\0carbyne-\xff-%d' % os.getpid())
print("ready", flush=True)
sys.stdin.read()
