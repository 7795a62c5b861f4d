//! filestat's user accounts: the login name and groups of a uid, through
//! the system's user database (NSS: /etc/passwd, LDAP, sssd), as `id -Gn`
//! finds them.

use std::ffi::{CStr, CString};

/// A process owner as the user filters see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub uid: u32,
    /// The login name, or the uid in digits when it has none (as lsof shows it).
    pub name: String,
    /// Its groups' names, primary and supplementary (as `id -Gn`); looked up
    /// only when a group filter is set.
    pub groups: Vec<String>,
}

/// The login name (or the uid in digits) and, when `groups`, the group
/// names of `uid`, through the system's user database (NSS), as `id -Gn`.
pub(super) fn lookup_account(uid: u32, groups: bool) -> Result<Account, i32> {
    let Some((name, gid)) = passwd_entry(uid)? else {
        return Ok(Account {
            uid,
            name: uid.to_string(),
            groups: Vec::new(),
        });
    };
    let groups = if groups {
        group_names(&name, gid)
    } else {
        Vec::new()
    };
    Ok(Account { uid, name, groups })
}

/// Calls a libc `*_r` lookup with a buffer grown while it answers ERANGE:
/// what it found, or the error it gave.
fn with_buffer<T>(
    mut call: impl FnMut(&mut [u8]) -> Result<Option<T>, i32>,
) -> Result<Option<T>, i32> {
    let mut buf = vec![0u8; 1024];
    loop {
        match call(&mut buf) {
            Err(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            done => return done,
        }
    }
}

fn passwd_entry(uid: u32) -> Result<Option<(String, u32)>, i32> {
    with_buffer(|buf| {
        // SAFETY: getpwuid_r writes only into `pwd` and `buf` (whose length
        // it is given) and points `found` at `pwd` or null; the strings it
        // fills are read before `buf` is touched again.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut found: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            );
            if rc != 0 {
                return Err(rc);
            }
            if found.is_null() || pwd.pw_name.is_null() {
                return Ok(None);
            }
            let name = CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
            Ok(Some((name, pwd.pw_gid)))
        }
    })
}

fn group_names(user: &str, gid: u32) -> Vec<String> {
    let Ok(cuser) = CString::new(user) else {
        return Vec::new();
    };
    let mut gids: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = gids.len() as libc::c_int;
        // SAFETY: `gids` has room for `n` entries; getgrouplist writes at
        // most that many and sets `n` to the number it has (or needs).
        let rc = unsafe { libc::getgrouplist(cuser.as_ptr(), gid, gids.as_mut_ptr(), &mut n) };
        let n = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            gids.truncate(n);
            break;
        }
        if n <= gids.len() || n > 65536 {
            gids.clear();
            break;
        }
        gids.resize(n, 0);
    }
    gids.into_iter()
        .map(|g| {
            group_name(g)
                .ok()
                .flatten()
                .unwrap_or_else(|| g.to_string())
        })
        .collect()
}

fn group_name(gid: u32) -> Result<Option<String>, i32> {
    with_buffer(|buf| {
        // SAFETY: as in `passwd_entry`, for getgrgid_r.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut found: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            );
            if rc != 0 {
                return Err(rc);
            }
            if found.is_null() || grp.gr_name.is_null() {
                return Ok(None);
            }
            Ok(Some(
                CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned(),
            ))
        }
    })
}
