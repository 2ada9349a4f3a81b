//! The actor's seeded rng (`ctx.rng()`): reproducible from the system seed, and fresh for a
//! path that is stopped and started again (incarnation 0 both times), which must not repeat
//! its predecessor's draws (a gateway that restarted chose the very marks its predecessor had).

use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{Actor, ActorError, ActorPath, ActorSpec, Ctx, SystemConfig};
use parking_lot::Mutex;
use rand::Rng;

struct Drawer(Arc<Mutex<Vec<u64>>>);

impl Actor for Drawer {
    type Msg = ();
    fn started(&mut self, ctx: &mut Ctx<'_, ()>) -> Result<(), ActorError> {
        let draw = ctx.rng().random::<u64>();
        self.0.lock().push(draw);
        Ok(())
    }
    fn handle(&mut self, _: (), _: &mut Ctx<'_, ()>) -> Result<(), ActorError> {
        Ok(())
    }
}

/// Starts `/drawer`, stops it, starts it again a second later: both draws.
fn draws(seed: u64) -> Vec<u64> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut system = DetSystem::new(SystemConfig::with_seed(seed));
    for _ in 0..2 {
        let shared = Arc::clone(&seen);
        system.spawn("drawer", ActorSpec::new(move |_| Drawer(Arc::clone(&shared)))).expect("it starts");
        system.run_for(Duration::from_secs(1));
        system.stop_subtree(&ActorPath::parse("/drawer").unwrap());
        system.run_for(Duration::from_secs(1));
    }
    let draws = seen.lock().clone();
    draws
}

#[test]
fn a_path_started_afresh_draws_anew_and_a_seed_replays_its_draws() {
    let first = draws(7);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_ne!(first[0], first[1], "the second start repeated the first one's draws");
    assert_eq!(draws(7), first, "the same seed, the same draws");
    assert_ne!(draws(8), first, "another seed, other draws");
}
