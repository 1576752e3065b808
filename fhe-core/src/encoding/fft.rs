//! placeholder (being written on branch `encoding`)
