//! A pipeline's shape: named steps, each served by an actor, each starting once the steps it
//! comes after are done, with its own timeout and retry policy. `Dag::new` checks the shape
//! (unique names, known predecessors, no cycle) and keeps the steps in a topological order, the
//! declaration order among steps that could go either way.

use std::time::Duration;

/// How a step is retried: `attempts` in all, the wait before attempt `n + 1` being
/// `backoff * 2^(n - 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
}

impl Default for Retry {
    /// Three attempts, 10 s then 20 s apart.
    fn default() -> Self {
        Retry { attempts: 3, backoff: Duration::from_secs(10) }
    }
}

impl Retry {
    /// The wait before the attempt after `attempt` (1-based).
    pub fn wait_after(&self, attempt: u32) -> Duration {
        self.backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
    }
}

/// One step as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    pub name: String,
    /// The steps it comes after; it starts once they are all done.
    pub after: Vec<String>,
    /// The steps whose outputs it is handed (ancestors of it); none given: those it comes
    /// after. Outputs can be large (training data): a step is handed only what it uses.
    pub takes: Option<Vec<String>>,
    /// How long one attempt may take before it counts as failed (cluster time, like the
    /// backoff and the schedule).
    pub timeout: Duration,
    pub retry: Retry,
}

impl StepSpec {
    /// A step after `after`, with a timeout of one minute and the default retries.
    pub fn new(name: &str, after: &[&str]) -> StepSpec {
        StepSpec {
            name: name.into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            takes: None,
            timeout: Duration::from_secs(60),
            retry: Retry::default(),
        }
    }

    pub fn timeout(self, timeout: Duration) -> StepSpec {
        StepSpec { timeout, ..self }
    }

    pub fn retry(self, retry: Retry) -> StepSpec {
        StepSpec { retry, ..self }
    }

    pub fn takes(self, steps: &[&str]) -> StepSpec {
        StepSpec { takes: Some(steps.iter().map(|s| s.to_string()).collect()), ..self }
    }
}

/// A checked pipeline shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    /// In a topological order.
    steps: Vec<StepSpec>,
    /// For each step (same order), the indices of the steps it comes after.
    after: Vec<Vec<usize>>,
    /// For each step, the indices of the steps whose outputs it is handed.
    inputs: Vec<Vec<usize>>,
}

impl Dag {
    /// Checks and orders `steps`; says what is wrong with a shape that cannot run.
    pub fn new(steps: Vec<StepSpec>) -> Result<Dag, String> {
        if steps.is_empty() {
            return Err("a pipeline needs at least one step".into());
        }
        let index = |name: &str| steps.iter().position(|s| s.name == name);
        for (i, step) in steps.iter().enumerate() {
            if index(&step.name) != Some(i) {
                return Err(format!("two steps are named {:?}", step.name));
            }
            if step.retry.attempts == 0 {
                return Err(format!("step {:?} has no attempt", step.name));
            }
            if let Some(unknown) = step.after.iter().find(|a| index(a).is_none()) {
                return Err(format!("step {:?} comes after {unknown:?}, which is not a step", step.name));
            }
        }
        // Kahn's algorithm, always taking the first ready step in declaration order.
        let mut placed = vec![false; steps.len()];
        let mut order = Vec::with_capacity(steps.len());
        while order.len() < steps.len() {
            let ready = (0..steps.len()).find(|&i| {
                !placed[i] && steps[i].after.iter().all(|a| placed[index(a).expect("checked above")])
            });
            let Some(next) = ready else {
                let stuck: Vec<&str> =
                    (0..steps.len()).filter(|&i| !placed[i]).map(|i| steps[i].name.as_str()).collect();
                return Err(format!("the steps {stuck:?} wait for each other (a cycle)"));
            };
            placed[next] = true;
            order.push(next);
        }
        let steps: Vec<StepSpec> = order.iter().map(|&i| steps[i].clone()).collect();
        let position = |name: &str| steps.iter().position(|s| s.name == name).expect("checked above");
        let after = steps.iter().map(|s| s.after.iter().map(|a| position(a)).collect()).collect();
        let mut dag = Dag { steps, after, inputs: Vec::new() };
        for (i, step) in dag.steps.iter().enumerate() {
            let Some(takes) = &step.takes else {
                dag.inputs.push(dag.after[i].clone());
                continue;
            };
            let ancestors = dag.ancestors(i);
            let mut inputs = Vec::new();
            for name in takes {
                match dag.index(name).filter(|j| ancestors.contains(j)) {
                    Some(j) => inputs.push(j),
                    None => {
                        return Err(format!(
                            "step {:?} takes {name:?}, which it does not come after",
                            step.name
                        ))
                    }
                }
            }
            dag.inputs.push(inputs);
        }
        Ok(dag)
    }

    /// The indices of the steps whose outputs step `i` is handed.
    pub fn inputs(&self, i: usize) -> &[usize] {
        &self.inputs[i]
    }

    /// The steps, in a topological order.
    pub fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    /// The indices of the steps that step `i` comes after.
    pub fn after(&self, i: usize) -> &[usize] {
        &self.after[i]
    }

    /// Step `i`'s ancestors (every step it depends on, directly or not), in order.
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        let mut hit = vec![false; self.steps.len()];
        hit[i] = true;
        for j in (0..i).rev() {
            hit[j] = (j + 1..=i).any(|k| hit[k] && self.after[k].contains(&j));
        }
        (0..i).filter(|&j| hit[j]).collect()
    }

    /// Step `i`'s descendants (every step that depends on it, directly or not), in order.
    pub fn descendants(&self, i: usize) -> Vec<usize> {
        let mut hit = vec![false; self.steps.len()];
        hit[i] = true;
        for j in i + 1..self.steps.len() {
            hit[j] = self.after[j].iter().any(|&a| hit[a]);
        }
        (i + 1..self.steps.len()).filter(|&j| hit[j]).collect()
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dag: &Dag, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&i| dag.steps()[i].name.clone()).collect()
    }

    #[test]
    fn steps_are_ordered_so_each_comes_after_what_it_needs() {
        let dag = Dag::new(vec![
            StepSpec::new("deploy", &["register"]),
            StepSpec::new("ingest", &[]),
            StepSpec::new("register", &["train", "check"]),
            StepSpec::new("check", &["ingest"]),
            StepSpec::new("train", &["ingest"]),
        ])
        .unwrap();
        let order: Vec<&str> = dag.steps().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["ingest", "check", "train", "register", "deploy"]);
        let register = dag.index("register").unwrap();
        assert_eq!(names(&dag, dag.after(register)), ["train", "check"]);
        assert_eq!(names(&dag, &dag.ancestors(register)), ["ingest", "check", "train"]);
        assert_eq!(names(&dag, &dag.ancestors(dag.index("check").unwrap())), ["ingest"]);
        assert_eq!(names(&dag, &dag.descendants(dag.index("train").unwrap())), ["register", "deploy"]);
        assert_eq!(names(&dag, &dag.descendants(0)), ["check", "train", "register", "deploy"]);
        assert!(dag.descendants(dag.index("deploy").unwrap()).is_empty());
        assert_eq!(names(&dag, dag.inputs(register)), ["train", "check"], "by default: what it comes after");
        let takes = Dag::new(vec![
            StepSpec::new("ingest", &[]),
            StepSpec::new("train", &["ingest"]),
            StepSpec::new("deploy", &["train"]).takes(&["ingest", "train"]),
        ])
        .unwrap();
        assert_eq!(names(&takes, takes.inputs(2)), ["ingest", "train"]);
    }

    #[test]
    fn a_shape_that_cannot_run_is_refused_with_the_reason() {
        let refused = |steps: Vec<StepSpec>| Dag::new(steps).unwrap_err();
        assert!(refused(vec![]).contains("at least one step"));
        let twice = refused(vec![StepSpec::new("a", &[]), StepSpec::new("a", &[])]);
        assert!(twice.contains("two steps are named \"a\""), "{twice}");
        let unknown = refused(vec![StepSpec::new("a", &["b"])]);
        assert!(unknown.contains("comes after \"b\""), "{unknown}");
        let cycle = refused(vec![
            StepSpec::new("a", &[]),
            StepSpec::new("b", &["a", "c"]),
            StepSpec::new("c", &["b"]),
        ]);
        assert!(cycle.contains("[\"b\", \"c\"] wait for each other"), "{cycle}");
        let never = StepSpec::new("a", &[]).retry(Retry { attempts: 0, backoff: Duration::ZERO });
        assert!(refused(vec![never]).contains("no attempt"));
        let sideways = refused(vec![
            StepSpec::new("a", &[]),
            StepSpec::new("b", &["a"]),
            StepSpec::new("c", &["a"]).takes(&["b"]),
        ]);
        assert!(sideways.contains("step \"c\" takes \"b\", which it does not come after"), "{sideways}");
    }

    #[test]
    fn retries_back_off_exponentially() {
        let retry = Retry { attempts: 4, backoff: Duration::from_secs(5) };
        let waits: Vec<u64> = (1..4).map(|a| retry.wait_after(a).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20]);
        assert_eq!(retry.wait_after(200), Duration::from_secs(5 * 65_536), "capped, no overflow");
    }
}
