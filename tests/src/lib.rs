//! Black-box tests of the whole system (`tests/*.rs`): `pwreset serve` and the admin commands
//! as a user runs them, the Lambda binaries under cargo-lambda's runtime emulator. The
//! harness they share with the core's tests and the bench driver is `pwreset-testkit`; what
//! is here belongs to the race tests alone, whose tally `scripts/race` collects.

/// A race test's size from the environment: `PWRESET_RACE_ROUNDS` and `PWRESET_RACE_N`
/// (`scripts/race` sets them), else `default`.
pub fn race_setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How the rounds of a race ended: with no winner, one, or two and more.
#[derive(Debug, Default)]
pub struct RaceTally {
    by_winners: [usize; 3],
}

impl RaceTally {
    /// Counts a round that had `winners` successful confirms. Two or more fail the round
    /// at once, so even a run cut short proves every round before it.
    pub fn count(&mut self, round: usize, winners: usize) {
        self.by_winners[winners.min(2)] += 1;
        assert!(winners <= 1, "round {round}: {winners} winners");
    }

    pub fn rounds(&self) -> usize {
        self.by_winners.iter().sum()
    }

    pub fn no_winner(&self) -> usize {
        self.by_winners[0]
    }

    pub fn one_winner(&self) -> usize {
        self.by_winners[1]
    }

    /// The fields of the `race:` lines `scripts/race` collects.
    pub fn summary(&self, n: usize) -> String {
        format!(
            "rounds={} n={n} one_winner={} no_winner={} double_success={}",
            self.rounds(),
            self.by_winners[1],
            self.by_winners[0],
            self.by_winners[2]
        )
    }
}
