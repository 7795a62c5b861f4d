//! The UDP receivers: SO_REUSEPORT sockets, one thread each, reading
//! batches of datagrams with recvmmsg.

use super::Shared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Datagrams taken per `recvmmsg` call, and the room for each (the largest
/// UDP payload fits, so nothing is ever cut).
const BATCH: usize = 32;
const DATAGRAM: usize = 65_536;

/// Binds `n` UDP sockets to one address with SO_REUSEPORT: the kernel
/// spreads senders over them, one receiving thread each.
pub(super) fn udp_sockets(listen: &str, n: usize) -> std::io::Result<Vec<std::net::UdpSocket>> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    use std::net::ToSocketAddrs;
    let mut addr = listen.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{listen}: no address"),
        )
    })?;
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let fd = rustix::net::socket(family, SocketType::DGRAM, None)?;
        sockopt::set_socket_reuseport(&fd, true)?;
        // A deep receive queue absorbs bursts while a flush holds a shard
        // (beyond net.core.rmem_max needs root; the plain request is the fallback).
        let want = 16 << 20;
        if sockopt::set_socket_recv_buffer_size_force(&fd, want).is_err() {
            let _ = sockopt::set_socket_recv_buffer_size(&fd, want);
        }
        rustix::net::bind(&fd, &addr)?;
        let sock = std::net::UdpSocket::from(fd);
        // With port 0 the first socket picks the port the others share.
        addr = sock.local_addr()?;
        sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
        out.push(sock);
    }
    Ok(out)
}

/// Receives up to [`BATCH`] datagrams in one system call, waiting for the
/// first (up to the socket's read timeout). Returns each one's length; a
/// datagram cut short (`MSG_TRUNC`) is reported as `None`.
fn recv_batch(
    sock: &std::net::UdpSocket,
    bufs: &mut [u8],
    lens: &mut [Option<usize>; BATCH],
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    debug_assert_eq!(bufs.len(), BATCH * DATAGRAM);
    let mut iovs: Vec<libc::iovec> = bufs
        .chunks_mut(DATAGRAM)
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at one iovec over its own DATAGRAM-byte
    // slice of `bufs`, all of which outlive the call; no address or control
    // buffers are given; the count matches the array.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    for (len, h) in lens.iter_mut().zip(&hdrs[..n]) {
        *len = if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            None
        } else {
            Some(h.msg_len as usize)
        };
    }
    Ok(n)
}

/// One receiving thread: batches of datagrams from its socket into the
/// aggregator until `stop`.
pub(super) fn receive(sock: std::net::UdpSocket, s: Arc<Shared>, stop: Arc<AtomicBool>) {
    let mut bufs = vec![0u8; BATCH * DATAGRAM];
    let mut lens = [None; BATCH];
    while !stop.load(Ordering::Relaxed) {
        match recv_batch(&sock, &mut bufs, &mut lens) {
            Ok(n) => {
                let cut = lens[..n].iter().filter(|l| l.is_none()).count();
                s.agg.packets(
                    lens[..n]
                        .iter()
                        .enumerate()
                        .filter_map(|(i, l)| Some(&bufs[i * DATAGRAM..i * DATAGRAM + (*l)?])),
                );
                if cut > 0 {
                    s.agg.count_bad(cut as u64);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                log::warn!("statsd: udp receive: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

/// glibc raises its mmap threshold each time a large block is freed, after
/// which a flush's buffer or a grown table's old storage stays in the heap
/// and the memory is never given back. A fixed threshold keeps large blocks
/// mapped, so freeing them returns them to the system.
pub(super) fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the
    // server's threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
