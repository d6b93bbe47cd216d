//! Keeps freed tensor buffers in the process instead of handing them back to the kernel.
//!
//! Every candle op allocates its output afresh. glibc serves blocks above its mmap threshold
//! (128 KiB at start, adapting upwards only slowly) with a new `mmap` and returns them with
//! `munmap` on free, and trims the heap top after every large free: each op then page-faults
//! its output in again (about 7% of a small GPT training step, and 15% more throughput without
//! it). PyTorch avoids the same cost with its caching allocator; here we raise glibc's
//! thresholds once, so freed buffers are reused. Other platforms' allocators are left alone.
//!
//! The price is resident memory: a training run's freed activations stay in the process after
//! its last step (about 1 GB for a LoRA step of SmolLM2-135M), under whatever comes next, and
//! a held-out evaluation after training then peaked 145 MiB above the step itself.
//! [`release_freed_buffers`] hands them back once, when `Trainer::train` ends.

/// Raises glibc's mmap and trim thresholds, once per process. Called when a model is built.
pub(crate) fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // glibc's constants (malloc.h): M_TRIM_THRESHOLD -1, M_TOP_PAD -2, M_MMAP_THRESHOLD -3.
            // 32 MiB is the largest mmap threshold glibc accepts on 64-bit.
            // SAFETY: mallopt only changes allocator tuning parameters.
            unsafe {
                libc::mallopt(-3, 32 << 20);
                libc::mallopt(-1, 1 << 30);
                libc::mallopt(-2, 64 << 20);
            }
        });
    }
}

/// Returns the freed buffers the thresholds of [`keep_freed_buffers`] kept to the system
/// (glibc's `malloc_trim`: free pages of every arena, not only the heap's top), once a run of
/// steps that would have reused them is over.
pub(crate) fn release_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory; no live allocation is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The size of a transparent huge page on x86-64 and most aarch64 kernels (2 MiB).
const HUGE_PAGE: usize = 2 << 20;

/// `madvise` advice (Linux 6.1, `mman-common.h`) to back a range with huge pages now, copying
/// the 4 KiB pages already written (the libc crate does not name it yet).
#[cfg(target_os = "linux")]
const MADV_COLLAPSE: libc::c_int = 25;

/// Runs `write`, the first write of the `bytes` bytes at `ptr`, with the buffer backed by
/// transparent huge pages where the system grants them: `madvise(MADV_HUGEPAGE)` before, so
/// the pages not yet used fault in as huge pages, and `MADV_COLLAPSE` after, which moves the
/// pages already used (memory freed and reused) into huge pages, a copy made once (memory freed
/// again keeps its huge pages). Buffers under an eighth of a huge page are left alone.
///
/// Most distributions enable huge pages only where asked (`transparent_hugepage=madvise`),
/// and glibc does not ask. Weights and a KV cache that every step of decoding reads across, in
/// 4 KiB pages, cost a TLB miss every 1,024 floats and stop the hardware prefetcher at every
/// page boundary (docs/benchmarks.md has what 2 MiB pages gave). The advice covers the aligned
/// 2 MiB pages the buffer touches, reaching past its ends only into the same run of private
/// anonymous memory (the heap that holds it, read from `/proc/self/maps`; only the pages wholly
/// inside the buffer when it cannot be read): most weights are smaller than a huge page and
/// share theirs with their neighbours. It changes how memory is backed, never what it holds,
/// and a kernel that declines it (THP off, another OS, Linux before 6.1 for the collapse)
/// leaves everything as it was.
pub(crate) fn on_huge_pages<R>(ptr: *const u8, bytes: usize, write: impl FnOnce() -> R) -> R {
    // the range is found once (one read of the mappings), then advised before and after
    let range = huge_range(ptr, bytes);
    advise(range, false);
    let r = write();
    advise(range, true);
    r
}

/// The page-aligned range [`on_huge_pages`] advises for the `bytes` bytes at `ptr`; `None`
/// when the buffer is too small or the platform has no such advice.
fn huge_range(ptr: *const u8, bytes: usize) -> Option<(usize, usize)> {
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_PAGE / 8 {
        let (a, b) = (ptr as usize, ptr as usize + bytes);
        let (lo, hi) = match anonymous_run(a, b) {
            Some((start, end)) => (
                start.max(a / HUGE_PAGE * HUGE_PAGE),
                end.min(b.next_multiple_of(HUGE_PAGE)),
            ),
            None => (a.next_multiple_of(HUGE_PAGE), b / HUGE_PAGE * HUGE_PAGE),
        };
        let (lo, hi) = (lo.next_multiple_of(4096), hi / 4096 * 4096);
        return (hi > lo).then_some((lo, hi));
    }
    let _ = (ptr, bytes, HUGE_PAGE);
    None
}

/// `MADV_HUGEPAGE` over `range`, and `MADV_COLLAPSE` with `collapse`.
fn advise(range: Option<(usize, usize)>, collapse: bool) {
    #[cfg(target_os = "linux")]
    if let Some((lo, hi)) = range {
        let (start, len) = (lo as *mut libc::c_void, hi - lo);
        // SAFETY: [lo, hi) is the buffer or private anonymous memory mapped around it
        // (`huge_range`); both advices only change how its pages are backed, never their
        // contents, and failures are ignored (the advice is optional; MADV_COLLAPSE needs
        // Linux 6.1).
        unsafe {
            libc::madvise(start, len, libc::MADV_HUGEPAGE);
            if collapse {
                libc::madvise(start, len, MADV_COLLAPSE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (range, collapse);
}

/// The run of contiguous private, writable anonymous mappings (the heap, an arena) that holds
/// `[a, b)`, from `/proc/self/maps`; `None` when it cannot be read or no such run holds it.
#[cfg(target_os = "linux")]
fn anonymous_run(a: usize, b: usize) -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let (mut run, mut found) = (None, None);
    for (start, end, anonymous) in maps.lines().filter_map(mapping) {
        run = match run {
            _ if !anonymous => None,
            Some((s, e)) if e == start => Some((s, end)),
            _ => Some((start, end)),
        };
        match run {
            Some((s, e)) if s <= a && b <= e => found = run,
            // the run that held it has ended
            _ if found.is_some() => break,
            _ => {}
        }
    }
    found
}

/// One line of `/proc/self/maps`: its range, and whether it is private, writable anonymous
/// memory (no file, or the heap).
#[cfg(target_os = "linux")]
fn mapping(line: &str) -> Option<(usize, usize, bool)> {
    let mut f = line.split_whitespace();
    let (range, perms, inode) = (f.next()?, f.next()?, f.nth(2)?);
    let path = f.next().unwrap_or("");
    let (start, end) = range.split_once('-')?;
    let anonymous = perms == "rw-p" && inode == "0" && (path.is_empty() || path == "[heap]");
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
        anonymous,
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// A maps line is read as its range and whether it is private, writable anonymous memory.
    #[test]
    fn mapping_reads_ranges_and_kinds() {
        let heap = "55d0c000-55d4e000 rw-p 00000000 00:00 0                          [heap]";
        assert_eq!(super::mapping(heap), Some((0x55d0c000, 0x55d4e000, true)));
        let anon = "7f0a0000-7f0b0000 rw-p 00000000 00:00 0 ";
        assert_eq!(super::mapping(anon), Some((0x7f0a0000, 0x7f0b0000, true)));
        let file =
            "7f0c0000-7f0d0000 rw-p 00001000 fd:01 1234                       /usr/lib/libc.so.6";
        assert_eq!(super::mapping(file), Some((0x7f0c0000, 0x7f0d0000, false)));
        let guard = "7f0e0000-7f0e1000 ---p 00000000 00:00 0 ";
        assert_eq!(super::mapping(guard), Some((0x7f0e0000, 0x7f0e1000, false)));
        assert_eq!(super::mapping("not a maps line"), None);
    }

    /// A live heap buffer lies in a run of anonymous memory that holds all of it, and the
    /// advice leaves its contents as they were.
    #[test]
    fn a_heap_buffer_lies_in_an_anonymous_run_and_keeps_its_values() {
        let v: Vec<f32> = (0..(3 << 20)).map(|i| i as f32).collect();
        let (a, b) = (v.as_ptr() as usize, v.as_ptr() as usize + v.len() * 4);
        let (s, e) = super::anonymous_run(a, b).expect("a heap buffer is anonymous memory");
        assert!(s <= a && b <= e, "{s:x}..{e:x} does not hold {a:x}..{b:x}");
        let range = super::huge_range(v.as_ptr().cast(), v.len() * 4);
        assert!(range.is_some_and(|(lo, hi)| lo <= a && b <= hi));
        super::advise(range, true);
        assert!(v.iter().enumerate().all(|(i, x)| *x == i as f32));
    }
}
