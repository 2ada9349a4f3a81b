//! Arbitrary bytes to the frame decoder, every payload decoder and `Mote::on_down`, then as a
//! sequence of steps that reach authenticated paths (see `aiot_firmware::fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aiot_firmware::fuzz::fuzz_one(data));
