package bus

// TmpDir is the temporary JetStream store Open made for b ("" when none), for
// the tests of package bus_test.
func TmpDir(b *Bus) string { return b.tmpDir }

// ParseUserSeedPublic parses the contents of a seed file as Open does and
// returns the seed's public key, for the fuzz test.
func ParseUserSeedPublic(data []byte) (string, error) {
	kp, err := parseUserSeed(data)
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	return kp.PublicKey()
}
