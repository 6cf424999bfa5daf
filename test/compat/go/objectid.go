//go:build !compat_no_objectid

package main

import "github.com/Azure/azure-sdk-for-go/sdk/azidentity"

// objectID selects a user-assigned identity by object id (azidentity.ObjectID, absent from older releases: those
// are built with the compat_no_objectid tag, see test/compat/go/versions/).
func objectID(value string) (azidentity.ManagedIDKind, error) { return azidentity.ObjectID(value), nil }
