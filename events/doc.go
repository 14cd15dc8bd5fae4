// Package events is fn's asynchronous delivery on NATS JetStream: calls accepted now and
// delivered later through the gateway, at least once, tried again with backoff, and given up
// to dead letters with their last answer.
//
// The engine keeps everything: a work-queue stream of calls (FN_CALLS, one subject per
// function, which also holds the functions' schedules as JetStream scheduled messages), a
// stream of dead letters (FN_DEAD) and a key-value bucket of what became of each call
// (fn-calls). A call's id is its sequence in FN_CALLS; a repeated Idempotency-Key is the
// stream's de-duplication of the message id, within its window.
//
// Decide (retry.go) is the decision after each attempt, a pure function of the function's
// Policy, the attempt, the time the call was accepted and now.
package events
