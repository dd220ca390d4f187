//! The human log (`logs/orchestrator.log`): tracing set-up, LOG_LEVEL, size rotation.
