package container

import (
	"errors"
	"fmt"
)

// Kinds of lifecycle errors (as Docker's errdefs classes), for errors.Is. The message of
// each error is Docker's wording.
var (
	// ErrNotFound: no such container ("No such container: x").
	ErrNotFound = errors.New("no such container")
	// ErrConflict: the container's state forbids the operation (not running, paused,
	// running and not forced, a name in use).
	ErrConflict = errors.New("conflict")
	// ErrInvalidParameter: bad input (a name, a restart policy, a filter).
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrDetached is returned by Stream.Wait when the client detached (the detach keys).
	ErrDetached = errors.New("detached from the container")
)

// Error is a lifecycle error: Docker's message, and a kind for errors.Is.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string        { return e.Msg }
func (e *Error) Is(target error) bool { return target == e.Kind }

func notFound(name string) error {
	return &Error{Kind: ErrNotFound, Msg: "No such container: " + name}
}

func conflictf(format string, args ...any) error {
	return &Error{Kind: ErrConflict, Msg: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) error {
	return &Error{Kind: ErrInvalidParameter, Msg: fmt.Sprintf(format, args...)}
}

func errNotRunning(id string) error { return conflictf("Container %s is not running", id) }
