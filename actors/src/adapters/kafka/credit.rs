//! A consumer's credit: how many more records it may deliver. `grant` adds; the polling thread
//! takes what it delivers and waits (briefly, so it can still serve the group) while none is
//! left.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// Records a consumer may still deliver.
pub struct Credit {
    left: Mutex<u64>,
    granted: Condvar,
}

impl Credit {
    pub fn new(initial: u32) -> Self {
        Credit { left: Mutex::new(u64::from(initial)), granted: Condvar::new() }
    }

    pub fn grant(&self, records: u32) {
        *self.left.lock() += u64::from(records);
        self.granted.notify_all();
    }

    /// The credit left, waiting up to `wait` for a grant if there is none.
    pub fn available(&self, wait: Duration) -> u64 {
        let mut left = self.left.lock();
        if *left == 0 {
            self.granted.wait_for(&mut left, wait);
        }
        *left
    }

    /// Uses `records` of the credit (never more than `available` said).
    pub fn take(&self, records: u64) {
        let mut left = self.left.lock();
        *left = left.saturating_sub(records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_is_taken_and_granted() {
        let credit = Credit::new(2);
        assert_eq!(credit.available(Duration::ZERO), 2);
        credit.take(2);
        assert_eq!(credit.available(Duration::from_millis(1)), 0);
        credit.grant(5);
        assert_eq!(credit.available(Duration::ZERO), 5);
    }
}
