//! Loops over independent RNS limbs (or other independent chunks): with the `parallel`
//! feature they run on rayon's current thread pool, without it in order on the calling thread.
//! Every closure writes only its own chunk, so the results are the same either way.

#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// The number of threads the loops below may use (1 without the `parallel` feature).
#[inline]
pub(crate) fn threads() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}

/// `v.resize(len, 0)`, the new part zero-filled by all threads (with `parallel` and more than
/// one thread; the result is the same).
#[inline]
pub(crate) fn resize_zeroed(v: &mut alloc::vec::Vec<u64>, len: usize) {
    #[cfg(feature = "parallel")]
    if threads() > 1 && len > v.len() + (1 << 16) {
        let extra = len - v.len();
        v.par_extend(rayon::iter::repeat_n(0u64, extra));
        return;
    }
    v.resize(len, 0);
}

/// `f(i, chunk_i)` for every chunk of `n` entries of `data` (the last one may be shorter).
#[inline]
pub(crate) fn chunks_mut<T: Send, F>(data: &mut [T], n: usize, f: F)
where
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    if n == 0 {
        return;
    }
    #[cfg(feature = "parallel")]
    if threads() > 1 {
        data.par_chunks_mut(n)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    data.chunks_mut(n).enumerate().for_each(|(i, c)| f(i, c));
}

/// `f(i, chunk_i, a_i)` over the `n`-word chunks of `data` zipped with those of `a`.
#[inline]
pub(crate) fn chunks_mut_zip<F>(data: &mut [u64], a: &[u64], n: usize, f: F)
where
    F: Fn(usize, &mut [u64], &[u64]) + Send + Sync,
{
    if n == 0 {
        return;
    }
    #[cfg(feature = "parallel")]
    if threads() > 1 {
        data.par_chunks_exact_mut(n)
            .zip(a.par_chunks_exact(n))
            .enumerate()
            .for_each(|(i, (c, x))| f(i, c, x));
        return;
    }
    data.chunks_exact_mut(n)
        .zip(a.chunks_exact(n))
        .enumerate()
        .for_each(|(i, (c, x))| f(i, c, x));
}

/// `f(i, chunk_i, a_i, b_i)` over the `n`-word chunks of `data`, `a` and `b`.
#[inline]
pub(crate) fn chunks_mut_zip2<F>(data: &mut [u64], a: &[u64], b: &[u64], n: usize, f: F)
where
    F: Fn(usize, &mut [u64], &[u64], &[u64]) + Send + Sync,
{
    if n == 0 {
        return;
    }
    #[cfg(feature = "parallel")]
    if threads() > 1 {
        data.par_chunks_exact_mut(n)
            .zip(a.par_chunks_exact(n))
            .zip(b.par_chunks_exact(n))
            .enumerate()
            .for_each(|(i, ((c, x), y))| f(i, c, x, y));
        return;
    }
    data.chunks_exact_mut(n)
        .zip(a.chunks_exact(n))
        .zip(b.chunks_exact(n))
        .enumerate()
        .for_each(|(i, ((c, x), y))| f(i, c, x, y));
}

/// `f(i, chunk_i, other_i)` over the `n`-word chunks of two mutable buffers.
#[inline]
pub(crate) fn chunks_mut_pair<F>(a: &mut [u64], b: &mut [u64], n: usize, f: F)
where
    F: Fn(usize, &mut [u64], &mut [u64]) + Send + Sync,
{
    if n == 0 {
        return;
    }
    #[cfg(feature = "parallel")]
    if threads() > 1 {
        a.par_chunks_exact_mut(n)
            .zip(b.par_chunks_exact_mut(n))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
        return;
    }
    a.chunks_exact_mut(n)
        .zip(b.chunks_exact_mut(n))
        .enumerate()
        .for_each(|(i, (x, y))| f(i, x, y));
}
