//! `cargo xtask screenshots`: the routine that makes the README's pictures
//! runs against the native stack into a scratch directory and leaves one
//! PNG per page and screen, of the screen's size in device pixels.
//!
//! It runs the service binaries next to this test's own build (the
//! workspace's `target/debug`, which `cargo test --workspace` builds) and
//! Chromium as the browser tests do, and Prometheus for its graph of the
//! votes; about 40 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use xtask::screenshots::{self, PAGES, SCREENS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_photographed_at_every_screen_size() {
    let out = tempfile::tempdir().unwrap();
    let shots = screenshots::run(&support::debug_bin_dir(), out.path())
        .await
        .expect("the pictures could be taken");
    // The app's pages at every size, and Prometheus's graph.
    assert_eq!(shots.len(), PAGES.len() * SCREENS.len() + 1, "{shots:#?}");
    let graph = out
        .path()
        .join(format!("prometheus-votes-{}.png", SCREENS[0].name));
    let png = std::fs::read(&graph)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", graph.display()));
    assert_eq!(screenshots::png_size(&png).unwrap(), SCREENS[0].pixels());

    for screen in SCREENS {
        let mut pictures = Vec::new();
        for page in PAGES {
            let path = out.path().join(format!("{page}-{}.png", screen.name));
            let png = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
            assert_eq!(
                screenshots::png_size(&png).unwrap(),
                screen.pixels(),
                "{}",
                path.display()
            );
            pictures.push(png);
        }
        // Before and after the vote, and the result page: three different
        // pictures, not the same page three times.
        assert_ne!(
            pictures[0], pictures[1],
            "the vote changed nothing on the {} page",
            screen.name
        );
        assert_ne!(pictures[1], pictures[2], "{}", screen.name);
    }
}
