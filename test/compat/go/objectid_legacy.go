//go:build compat_no_objectid

package main

import (
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// objectID: this azidentity release has no ObjectID (the version axis does not run the object-id row on it).
func objectID(string) (azidentity.ManagedIDKind, error) {
	return nil, errors.New("driver: this azidentity release has no azidentity.ObjectID")
}
