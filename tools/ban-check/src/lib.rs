//! Every banned call and type, once each (see `tools/check-bans`). Never compiled into aiot.

pub fn wall_clock() {
    let _ = std::time::Instant::now();
    let _ = std::time::SystemTime::now();
}

pub fn threads() {
    let _ = std::thread::spawn(|| ());
    let _ = std::thread::Builder::new().spawn(|| ());
}

pub fn tasks() {
    let _ = tokio::spawn(async {});
}

pub fn unseeded() -> u64 {
    let mut rng = rand::rng();
    let _ = rand::Rng::random::<u64>(&mut rng);
    rand::random::<u64>()
}

pub fn hash_order() -> usize {
    let map: std::collections::HashMap<u8, u8> = Default::default();
    let set: std::collections::HashSet<u8> = Default::default();
    map.len() + set.len()
}
