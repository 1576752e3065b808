//! Allocator settings for the `blindtuner` process.
//!
//! At N = 2^16 one RNS polynomial is one 13 MB buffer (25 limbs × 2^16 words). With glibc's
//! default, dynamic thresholds such buffers are often returned to the kernel when freed (by
//! `munmap` or by trimming the top of the heap) and faulted in again, page by page, when the
//! next ciphertext is allocated: about 3 000 page faults per polynomial, which can cost more
//! than the arithmetic of a ciphertext addition. Here freed memory is kept for reuse instead:
//! blocks up to 32 MB (glibc's largest mmap threshold) come from the heap, the heap is not
//! trimmed below 1 GiB of free space, and it grows in steps of 64 MB.

/// Applies the settings (glibc on Linux; elsewhere nothing to do).
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called once at start-up,
        // before any other thread exists. A rejected value leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    }
}
