//! Runnable integrations; see the `[[example]]` targets.
