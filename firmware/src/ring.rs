//! A fixed-capacity ring buffer that overwrites its oldest element when full.
//!
//! No heap: the storage is an array of `N` elements. Indexing is oldest-first.

/// A ring of at most `N` values of `T`; pushing into a full ring overwrites the oldest.
#[derive(Clone, Debug)]
pub struct Ring<T, const N: usize> {
    buf: [T; N],
    /// Index of the oldest element.
    head: usize,
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default, const N: usize> Ring<T, N> {
    /// An empty ring.
    pub fn new() -> Self {
        Self { buf: [T::default(); N], head: 0, len: 0 }
    }

    /// Appends `value`; returns the element it overwrote when the ring was full.
    pub fn push(&mut self, value: T) -> Option<T> {
        if N == 0 {
            return Some(value);
        }
        if self.len < N {
            self.buf[(self.head + self.len) % N] = value;
            self.len += 1;
            None
        } else {
            let old = core::mem::replace(&mut self.buf[self.head], value);
            self.head = (self.head + 1) % N;
            Some(old)
        }
    }

    /// The `i`-th element, oldest first.
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.buf[(self.head + i) % N])
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the next push overwrites the oldest element.
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// The elements, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).map(move |i| self.buf[(self.head + i) % N])
    }

    /// Forgets every element.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::Ring;

    #[test]
    fn overwrites_oldest_when_full() {
        let mut r: Ring<u8, 3> = Ring::new();
        assert!(r.is_empty());
        assert_eq!(r.push(1), None);
        assert_eq!(r.push(2), None);
        assert_eq!(r.push(3), None);
        assert!(r.is_full());
        assert_eq!(r.push(4), Some(1));
        assert_eq!(r.iter().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(r.get(0), Some(2));
        assert_eq!(r.get(3), None);
        r.clear();
        assert_eq!(r.len(), 0);
    }
}
