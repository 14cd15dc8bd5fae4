package agent

// cannotRunError says that an image can never run here, whatever retries: the container waits
// with reason CannotRun.
type cannotRunError struct{ msg string }

func (e *cannotRunError) Error() string { return e.msg }

// pullError is a failure to pull, worth retrying (ErrImagePull, then ImagePullBackOff).
type pullError struct{ err error }

func (e *pullError) Error() string { return e.err.Error() }
func (e *pullError) Unwrap() error { return e.err }
