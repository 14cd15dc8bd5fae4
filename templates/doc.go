// Package templates holds the starter projects fn init writes.
package templates
