//! The same workload under both executors gives the same observable result.

mod common;

use std::time::Duration;

use aiot_runtime::prelude::*;
use common::fanout::{self, Msg};

async fn run_tokio() -> (Vec<(u64, u64)>, usize) {
    let system = TokioSystem::start(SystemConfig::with_seed(1));
    system.run(&fanout::topology()).await.unwrap();
    for p in fanout::producers() {
        system.tell(&p, Msg::Go).unwrap();
    }
    let expected = fanout::expected_totals();
    // Poll until the totals settle on what they must be (or give up after a generous bound).
    // A busy sink's full mailbox refuses an outside ask: that is "not yet", so ask again.
    let mut totals = Vec::new();
    for _ in 0..500 {
        totals.clear();
        for r in fanout::reporters() {
            match system.ask(&r, Msg::Report, Duration::from_secs(5)).await {
                Ok(total) => totals.push(total),
                Err(AskError::Send(SendError::MailboxFull(_))) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if totals == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let restarts = common::restarts_of(&system.core().events(), "/w/flaky");
    system.shutdown().await;
    (totals, restarts)
}

#[test]
fn det_and_tokio_agree_on_the_outcome() {
    let (_, det_totals, det_restarts) = fanout::run_det(7);
    assert_eq!(det_totals, fanout::expected_totals());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (tokio_totals, tokio_restarts) = rt.block_on(run_tokio());
    assert_eq!(tokio_totals, det_totals);
    assert_eq!((tokio_restarts, det_restarts), (2, 2));
}
