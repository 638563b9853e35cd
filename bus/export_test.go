package bus

// TmpDir is the temporary JetStream store Open made for b ("" when none), for
// the tests of package bus_test.
func TmpDir(b *Bus) string { return b.tmpDir }
