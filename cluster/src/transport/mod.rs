//! Transports under the cluster's sans-IO state machines: `quic`, the mutual-TLS QUIC adapter
//! between nodes, and `admin`, the shell's connection to a node over the same endpoint. The
//! simulator plugs its own network in at the same seam.

pub mod admin;
pub mod quic;

/// One connection per node pair: when two nodes dial each other at once, both keep the
/// connection dialled by the node whose name sorts first, and close the other. Given who
/// dialled the connection already in use and who dialled the new one, says whether the new
/// one replaces it. Both ends answer the same, so they settle on the same connection.
pub fn keep_new_connection(in_use_dialled_by: &str, new_dialled_by: &str, a: &str, b: &str) -> bool {
    let first = a.min(b);
    new_dialled_by == first && in_use_dialled_by != first
}

#[cfg(test)]
mod tests {
    use super::keep_new_connection;

    #[test]
    fn both_ends_settle_on_the_connection_dialled_by_the_first_name() {
        // "a" < "b". On either end, whatever arrives second:
        for (me, peer) in [("a", "b"), ("b", "a")] {
            assert!(keep_new_connection("b", "a", me, peer), "a's connection replaces b's");
            assert!(!keep_new_connection("a", "b", me, peer), "b's connection never replaces a's");
            assert!(!keep_new_connection("a", "a", me, peer), "a redial by a keeps the one in use");
        }
    }
}
