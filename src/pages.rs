//! The daemon's resident memory after start-up: the program's code and
//! read-only data are mapped from its file, and the kernel maps them in 64
//! KiB windows around each page touched. Start-up (argument and config
//! parsing, regex compiling, the web and graph code sharing those windows)
//! leaves megabytes of such pages mapped that the collection cycle never
//! touches again. [`release_program_pages`] unmaps them; the cycle maps
//! back what it uses. The pages stay in the page cache (shared, clean), so
//! nothing is read from disk again; they just stop counting in the
//! daemon's RSS, and the kernel can reclaim them first when memory is short.

/// Unmaps the read-only (code and constant) segments of the program and
/// its libraries from this process's page tables (`madvise(MADV_DONTNEED)`
/// on whole pages inside each non-writable `PT_LOAD` segment). Writable
/// segments, including the relocated read-only-after-relocation data, are
/// left alone: their pages are private copies that must not be dropped.
/// Returns the bytes advised.
pub fn release_program_pages() -> usize {
    let mut advised = 0usize;
    // SAFETY: dl_iterate_phdr calls `visit` with a valid `dl_phdr_info` for
    // each loaded object, and `data` is the `advised` counter above, alive
    // for the call.
    unsafe {
        libc::dl_iterate_phdr(Some(visit), (&mut advised as *mut usize).cast());
    }
    advised
}

unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader hands a valid info for the duration of this call,
    // and `data` points at the caller's counter.
    let (info, advised) = unsafe { (&*info, &mut *data.cast::<usize>()) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // The kernel's vDSO is no file's pages: nothing to gain, left alone.
    if !info.dlpi_name.is_null() {
        // SAFETY: a non-null dlpi_name is a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) };
        if name.to_bytes().starts_with(b"linux-vdso") || name.to_bytes().starts_with(b"linux-gate")
        {
            return 0;
        }
    }
    // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
    let headers =
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let page = rustix::param::page_size();
    for h in headers {
        if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 || h.p_memsz == 0 {
            continue;
        }
        let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
        let end = start.wrapping_add(h.p_memsz as usize);
        // Only whole pages inside the segment.
        let first = start.div_ceil(page) * page;
        let last = end / page * page;
        if last <= first {
            continue;
        }
        // SAFETY: [first, last) lies inside a mapped, read-only segment of
        // a loaded object; MADV_DONTNEED on its private, never-written file
        // pages only drops them from the page tables (they are mapped from
        // the file again on the next access).
        let rc = unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_DONTNEED,
            )
        };
        if rc == 0 {
            *advised += last - first;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssFile:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("RssFile")
    }

    #[test]
    fn program_pages_are_unmapped_and_come_back_when_used() {
        let before = rss_file_kib();
        let advised = release_program_pages();
        let after = rss_file_kib();
        assert!(advised > 1 << 20, "{advised} bytes advised");
        assert!(
            after < before,
            "RssFile {before} kB before, {after} kB after"
        );
        // The code runs on: its pages are mapped again from the file.
        let re = regex::Regex::new(r"^(\d+)-(\w+)$").expect("regex");
        let caps = re.captures("42-answer").expect("match");
        assert_eq!(format!("{}/{}", &caps[1], &caps[2]), "42/answer");
        assert!(rss_file_kib() > after);
    }
}
