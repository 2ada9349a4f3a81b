//! The duty cycle: report interval, raw cadence, stage-1 and requested raw windows.

use aiot_firmware::duty::{DutyCycle, Plan};

const NONE: Plan = Plan { features: false, raw: false };
const FEAT: Plan = Plan { features: true, raw: false };
const RAW: Plan = Plan { features: true, raw: true };

#[test]
fn reports_every_interval_with_a_raw_window_every_nth_report() {
    let mut d = DutyCycle::new(60_000, 3);
    assert_eq!(d.next_report_ms(), 0);
    assert_eq!(d.plan(0, false), RAW, "the first report carries the raw window");
    assert_eq!(d.next_report_ms(), 60_000);
    assert_eq!(d.plan(250, false), NONE, "windows between reports send nothing");
    assert_eq!(d.plan(59_999, false), NONE);
    let plans: Vec<Plan> = (1..=7).map(|i| d.plan(i * 60_000, false)).collect();
    assert_eq!(plans, [FEAT, FEAT, RAW, FEAT, FEAT, RAW, FEAT]);
}

#[test]
fn stage1_firing_reports_at_once_with_raw_and_restarts_the_schedule() {
    let mut d = DutyCycle::new(60_000, 10);
    d.plan(0, false);
    assert_eq!(d.plan(10_000, true), RAW);
    assert_eq!(d.next_report_ms(), 70_000);
    assert_eq!(d.plan(60_000, false), NONE);
    assert_eq!(d.plan(70_000, false), FEAT);
}

#[test]
fn a_raw_request_goes_out_with_the_next_window() {
    let mut d = DutyCycle::new(60_000, 0);
    assert_eq!(d.plan(0, false), FEAT, "raw_every 0: no periodic raw window");
    d.request_raw();
    assert_eq!(d.plan(1_000, false), RAW);
    assert_eq!(d.plan(2_000, false), NONE);
    assert_eq!((1..20).map(|i| d.plan(i * 61_000, false)).filter(|p| p.raw).count(), 0);
}

#[test]
fn settings_change_the_schedule() {
    let mut d = DutyCycle::new(60_000, 10);
    d.plan(0, false);
    d.set_report_interval_ms(5_000);
    assert_eq!(d.report_interval_ms(), 5_000);
    assert_eq!(d.plan(5_000, false), FEAT);
    d.set_raw_every(2);
    assert_eq!(d.raw_every(), 2);
    assert_eq!(d.plan(10_000, false), FEAT);
    assert_eq!(d.plan(15_000, false), RAW);
}
