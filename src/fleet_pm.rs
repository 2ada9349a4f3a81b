//! `aiot sim --scenario fleet-pm`: the predictive-maintenance efficacy report
//! (`aiot_simulations::fleet_pm`), with options that change the scenario's physics to show
//! that the result holds beyond its documented parameters.

use aiot_simulations::fleet_pm::{self, FleetPmConfig};
use aiot_simulations::motor::BearingGeometry;

/// The scenario's name in `aiot sim`.
pub const NAME: &str = "fleet-pm";

/// What `aiot sim --list` says of it.
pub const ABOUT: &str =
    "predictive maintenance on a simulated fleet: alerts against failures, beside the RMS baseline";

/// Options of the fleet-pm scenario (ignored by the others).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FleetArgs {
    /// fleet-pm: the shortened scenario that CI runs (120 motors, faster wear, a window every 2 h).
    #[arg(long)]
    pub short: bool,
    /// fleet-pm: number of motors.
    #[arg(long)]
    pub motors: Option<usize>,
    /// fleet-pm: days observed (alerts are scored until 14 days before the end).
    #[arg(long)]
    pub days: Option<u64>,
    /// fleet-pm: no load-regime shift (to count false drift detections on stationary data).
    #[arg(long)]
    pub no_shift: bool,
    /// fleet-pm: supply frequency, Hz (the DSP filter is configured to match).
    #[arg(long)]
    pub line_hz: Option<f64>,
    /// fleet-pm: sensor noise, as a multiple of the default level.
    #[arg(long)]
    pub noise: Option<f64>,
    /// fleet-pm: base load, per unit of rated load (default 0.75).
    #[arg(long)]
    pub load: Option<f64>,
    /// fleet-pm: bearing geometry as BALLS,BALL_MM,PITCH_MM,CONTACT_DEG (default 8,17.462,72.5,0: a 6309).
    #[arg(long, value_parser = parse_bearing)]
    pub bearing: Option<BearingGeometry>,
}

fn parse_bearing(text: &str) -> Result<BearingGeometry, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [balls, ball, pitch, angle] = parts[..] else {
        return Err(format!("{text:?}: expected BALLS,BALL_MM,PITCH_MM,CONTACT_DEG"));
    };
    let number = |s: &str| s.parse::<f64>().map_err(|_| format!("{s:?} is not a number"));
    Ok(BearingGeometry {
        balls: balls.parse().map_err(|_| format!("{balls:?} is not a ball count"))?,
        ball_diameter_mm: number(ball)?,
        pitch_diameter_mm: number(pitch)?,
        contact_angle_deg: number(angle)?,
    })
}

impl FleetArgs {
    /// The scenario's configuration for `seed` with these options applied.
    pub fn config(&self, seed: u64) -> FleetPmConfig {
        let mut config = if self.short { FleetPmConfig::short(seed) } else { FleetPmConfig::standard(seed) };
        if let Some(motors) = self.motors {
            config.motors = motors;
        }
        if let Some(days) = self.days {
            config.duration = std::time::Duration::from_secs(days * 24 * 3600);
        }
        let params = &mut config.params;
        if self.no_shift {
            params.load.shift = None;
        }
        if let Some(hz) = self.line_hz {
            params.line_hz = hz;
        }
        if let Some(noise) = self.noise {
            params.noise.level *= noise;
        }
        if let Some(load) = self.load {
            params.load.base = load;
        }
        if let Some(bearing) = self.bearing {
            params.bearing = bearing;
        }
        config
    }
}

/// Runs seeds `first..=last`, printing each report; an error names the seeds that missed a
/// target.
pub fn run(args: &FleetArgs, first: u64, last: u64) -> Result<(), String> {
    let mut missed = Vec::new();
    for seed in first..=last {
        #[allow(clippy::disallowed_methods)] // the host measures wall time; the run never reads it
        let started = std::time::Instant::now();
        let report = fleet_pm::run(&args.config(seed))?;
        println!("{report}");
        println!("  wall time {:.1}s", started.elapsed().as_secs_f64());
        if !report.misses().is_empty() {
            missed.push(seed);
        }
    }
    if missed.is_empty() {
        Ok(())
    } else {
        Err(format!("seed(s) {missed:?} missed a target"))
    }
}
