//go:build !unix

package load

// lowerPriority does nothing where there is no nice value.
func lowerPriority(int) error { return nil }
