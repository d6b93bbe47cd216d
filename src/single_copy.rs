//! One copy of the crate per process, checked at the first tensor operation.
//!
//! evcxr compiles each notebook cell into its own shared object and, for a plain
//! `:dep massivetext = { path = ".." }`, links the crate (and candle) statically into each: every
//! cell then has its own statics, among them candle's counter that numbers tensors. A model
//! made in one cell and trained in the next mixes tensors of two counters, and backprop, which
//! files gradients by tensor number, adds the wrong ones: "shape mismatch in add", or silently
//! wrong gradients when the shapes agree. The notebook crate (`notebooks/kernel`, a dylib) is
//! the one copy every cell shares; this check turns the other case into an error that says so.
//!
//! The marker must be visible to every copy, so it cannot be a static of ours: the first copy
//! binds an abstract Unix socket named after this process (its pid namespace and pid, so
//! containers sharing a network namespace do not collide) and keeps it for the life of the
//! process; a second copy finds the name taken. Where sockets are unavailable (other systems,
//! sandboxes that forbid them) nothing is checked.
use std::sync::OnceLock;

/// `Ok` in the first copy of the crate in this process; in any other copy the message that
/// names the `:dep` line to use instead. Decided once per copy.
pub(crate) fn check() -> Result<(), &'static str> {
    static VERDICT: OnceLock<Result<(), String>> = OnceLock::new();
    match VERDICT.get_or_init(claim) {
        Ok(()) => Ok(()),
        Err(message) => Err(message.as_str()),
    }
}

fn message() -> String {
    let kernel = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks/kernel");
    format!(
        "a second copy of massivetext is loaded in this process (in a notebook: the crate linked into each cell by a plain `:dep massivetext = {{ path = ... }}`), and tensors of one copy given to the other would get wrong gradients. Restart the kernel and load the one copy all cells share, with this first cell:\n:dep massivetext = {{ package = \"massivetext-notebook\", path = \"{}\" }}\n(docs/notebooks.md, \"One copy of candle for all cells\")",
        kernel.display()
    )
}

#[cfg(target_os = "linux")]
fn claim() -> Result<(), String> {
    // "pid:[4026531836]": the pid namespace this pid is counted in.
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| {
            p.to_string_lossy()
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
        })
        .unwrap_or_default();
    let name = format!("massivetext-one-copy-{namespace}-{}", std::process::id());
    // SAFETY: plain socket calls on a zeroed `sockaddr_un` whose path (a NUL first byte, then
    // the name, which fits: under 60 bytes of the 108) is written within bounds; the length
    // passed covers exactly the family, the NUL and the name.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Ok(());
        }
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (slot, &b) in addr.sun_path[1..].iter_mut().zip(name.as_bytes()) {
            *slot = b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
        let bound = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        );
        if bound == 0 {
            // Kept open (never closed) so the name stays taken while the process lives.
            return Ok(());
        }
        let in_use = std::io::Error::last_os_error().raw_os_error() == Some(libc::EADDRINUSE);
        libc::close(fd);
        if in_use { Err(message()) } else { Ok(()) }
    }
}

#[cfg(not(target_os = "linux"))]
fn claim() -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_copy_passes_and_the_message_names_the_dep_line() {
        assert_eq!(super::check(), Ok(()));
        assert_eq!(super::check(), Ok(()), "decided once");
        let m = super::message();
        assert!(
            m.contains(":dep massivetext = { package = \"massivetext-notebook\", path = \""),
            "{m}"
        );
        assert!(m.contains("notebooks/kernel\" }"), "{m}");
    }
}
