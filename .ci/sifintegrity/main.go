// The reference integrity package (Go, from Debian's copy of the SIF
// library) as a test oracle for signatures: it verifies the signatures
// Vessel makes, and makes signatures for Vessel to verify.
//
//	sifintegrity verify IMAGE PUBLIC-KEY.asc    exit 0 if every group verifies
//	sifintegrity sign IMAGE SECRET-KEY.asc      signs every group (unprotected key)
package main

import (
	"fmt"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"
)

func keyring(path string) openpgp.EntityList {
	f, err := os.Open(path)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	el, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil {
		fail(err)
	}
	return el
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sifintegrity:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail(fmt.Errorf("usage: sifintegrity verify|sign IMAGE KEY.asc"))
	}
	image, keys := os.Args[2], keyring(os.Args[3])
	switch os.Args[1] {
	case "verify":
		f, err := sif.LoadContainerFromPath(image, sif.OptLoadWithFlag(os.O_RDONLY))
		if err != nil {
			fail(err)
		}
		defer f.UnloadContainer()
		v, err := integrity.NewVerifier(f, integrity.OptVerifyWithKeyRing(keys),
			integrity.OptVerifyCallback(func(r integrity.VerifyResult) bool {
				if e := r.Entity(); e != nil {
					fmt.Printf("signature %d by %X\n", r.Signature().ID(), e.PrimaryKey.Fingerprint)
				}
				return false
			}))
		if err != nil {
			fail(err)
		}
		if err := v.Verify(); err != nil {
			fail(err)
		}
		fmt.Println("verified")
	case "sign":
		f, err := sif.LoadContainerFromPath(image)
		if err != nil {
			fail(err)
		}
		defer f.UnloadContainer()
		s, err := integrity.NewSigner(f, integrity.OptSignWithEntity(keys[0]))
		if err != nil {
			fail(err)
		}
		if err := s.Sign(); err != nil {
			fail(err)
		}
		fmt.Println("signed")
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
