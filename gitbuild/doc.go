// Package gitbuild turns git pushes into builds: it verifies and reads the push webhooks of
// GitHub, Gitea and GitLab, and decides which pushes build which Function. fn-builder serves it.
package gitbuild
