//! Races at scale against `pwreset serve`: rounds of N concurrent confirms with one token.
//! Exactly one may land in every round; a round with two winners is a broken one-time
//! token, a round with none a lost request.
//!
//! `scripts/test` runs a few rounds; `scripts/race` runs 1,000 (`PWRESET_RACE_ROUNDS`,
//! `PWRESET_RACE_N`) and records the tally in `bench/RESULTS.md`.

use std::sync::Arc;

use pwreset_blackbox::{RaceTally, race_setting};
use pwreset_testkit::dev_server::DevServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_round_of_concurrent_confirms_has_exactly_one_winner_on_serve() {
    let rounds = race_setting("PWRESET_RACE_ROUNDS", 5);
    let n = race_setting("PWRESET_RACE_N", 20).max(2);
    let server = Arc::new(DevServer::start(&[
        ("RESET_LIMIT_PER_EMAIL", "off"),
        ("RESET_LIMIT_PER_IP", "off"),
    ]));
    let mut tally = RaceTally::default();
    for round in 0..rounds {
        let email = format!("racer{round}@example.org");
        let uid = server.create_user(&email, "the old password 1", true).await;
        let (_, token) = server.reset_link(&email).await;
        let attempts: Vec<_> = (0..n)
            .map(|i| {
                let (server, uid, token) = (server.clone(), uid.clone(), token.clone());
                tokio::spawn(async move {
                    let password = format!("violin kettle mango quartz {round} {i}");
                    let reply = server.confirm(&uid, &token, &password).await;
                    (reply, password)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for attempt in attempts {
            let (reply, password) = attempt.await.expect("task");
            match reply.status {
                200 => winners.push(password),
                400 => assert_eq!(reply.code(), "invalid_token", "{}", reply.text),
                other => panic!("round {round}: unexpected {other}: {}", reply.text),
            }
        }
        tally.count(round, winners.len());
        if let [winner] = winners.as_slice() {
            assert!(
                server.login(&email, winner).await,
                "round {round}: the stored password is the winner's"
            );
        }
    }
    eprintln!("race: serve {}", tally.summary(n));
    assert_eq!(
        tally.no_winner(),
        0,
        "rounds without a winner lost a request"
    );
}
