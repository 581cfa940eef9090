package api

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Error is an error answer of the API: a non-2xx status with an ErrorBody.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's error message ("error" in the body), or the
	// status text when the body had none.
	Message string
	// Field names the input field at fault, when the server named one.
	Field string
}

// Error implements error. It is the server's message, prefixed by the field
// at fault when the message does not already name it.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.Status))
		if msg == "" {
			msg = fmt.Sprintf("status %d", e.Status)
		}
	}
	if e.Field != "" && !strings.Contains(msg, e.Field) {
		return e.Field + ": " + msg
	}
	return msg
}

// IsNotFound reports whether err is (or wraps) an API error with status 404.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether err is (or wraps) an API error with status 409,
// such as a duplicate job name.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsInvalid reports whether err is (or wraps) an API error that rejects the
// input: status 400 (the Field of the Error names the culprit) or 413 (body
// too large).
func IsInvalid(err error) bool {
	return hasStatus(err, http.StatusBadRequest) || hasStatus(err, http.StatusRequestEntityTooLarge)
}

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// UnreachableError means the client could not connect to jobd at all: the
// socket does not exist, nothing listens, the connection was refused, the
// host does not resolve, or the socket's permissions deny access.
type UnreachableError struct {
	// Target is the unix socket path or the TCP address dialled.
	Target string
	// Err is the dial error.
	Err error
}

// Error implements error.
func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, os.ErrPermission) {
		return fmt.Sprintf("cannot reach jobd at %s: permission denied (is your user in the socket's group?)", e.Target)
	}
	return fmt.Sprintf("cannot reach jobd at %s: is jobd running? (%v)", e.Target, e.Err)
}

// Unwrap returns the dial error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err is (or wraps) an *UnreachableError.
func IsUnreachable(err error) bool {
	var e *UnreachableError
	return errors.As(err, &e)
}
