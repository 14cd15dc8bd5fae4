// Package gitbuild turns git pushes into builds: fn-builder serves it.
//
// The parts, each tested on its own with real git, ko and a registry where they touch them:
//   - Remote: bare repositories over smart HTTP (git's git-http-backend through CGI) at
//     /git/NAMESPACE/NAME.git. A push runs a pre-receive hook (fn-builder itself, RunHook) that
//     hands the pushed refs to Remote.Receive and waits: what the build writes reaches the pusher
//     as "remote:" lines, and a failed build rejects the push, so a branch never runs ahead of
//     what is deployed. Repo.Export reads the pushed commit from git's quarantine.
//   - Hooks: POST /hooks/github|gitea|gitlab, verified per Function (Verify), read (Read),
//     filtered by ref and path (PushEvent.Builds), de-duplicated by delivery id, answered 202.
//   - Service: runs builds through Plan, the queue's pure decision: the newest trigger of a
//     Function wins, at most a bound run at once, each within a timeout.
//   - BuildCommit: checks a commit out, reads its fn.yaml, builds with the builder library (the
//     same code as fn deploy) and pushes the image.
//
// What a successful build changes: the Function's spec.image (by digest) and the settings its
// commit's fn.yaml holds, written by the builder as fn deploy writes them, so the Function stays
// the one source of truth of what runs and the reconciler rolls it out as any change.
package gitbuild
