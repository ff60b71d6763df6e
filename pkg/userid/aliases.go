package userid

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// IdPs are the identity providers an alias map names ids at.
var IdPs = []string{"okta", "entra", "duo", "auth0", "pingid"}

// MaxAliasFile caps the alias file.
const MaxAliasFile = 16 << 20

// Aliases joins the ids one person has at several identity providers (an
// Okta login, an Entra UPN, a Duo username, an Auth0 user_id), so that
// risk seen at one meets a decision or an action at another. Every id of a
// person canonicalises to the person's id; each response connector acts
// with the person's id at its own IdP. Ids match under the fold rule,
// whatever the tenant's user id rule. A nil *Aliases maps nothing.
type Aliases struct {
	// person maps tenant ("" for every tenant) and folded id to a person.
	person map[string]map[string]*Person
}

// Person is one entry of the alias file.
type Person struct {
	// ID is the id Pushback keeps for the person.
	ID string `yaml:"id"`
	// Tenant limits the entry to one tenant (every tenant when empty).
	Tenant string `yaml:"tenant"`
	Okta   string `yaml:"okta"`
	Entra  string `yaml:"entra"`
	Duo    string `yaml:"duo"`
	Auth0  string `yaml:"auth0"`
	PingID string `yaml:"pingid"`
}

// At returns the person's id at idp ("" when the file names none).
func (p *Person) At(idp string) string {
	switch idp {
	case "okta":
		return p.Okta
	case "entra":
		return p.Entra
	case "duo":
		return p.Duo
	case "auth0":
		return p.Auth0
	case "pingid":
		return p.PingID
	}
	return ""
}

type aliasFile struct {
	People []Person `yaml:"people"`
}

// LoadAliases reads an alias file.
func LoadAliases(path string) (*Aliases, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseAliases(f)
}

// ParseAliases reads the YAML of an alias file: a list of people, each
// with the id Pushback keeps and their ids per identity provider. An id
// that belongs to two people is an error: it would join two people's risk.
func ParseAliases(r io.Reader) (*Aliases, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxAliasFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxAliasFile {
		return nil, fmt.Errorf("alias file larger than %d bytes", MaxAliasFile)
	}
	var f aliasFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("alias file: %w", err)
	}
	a := &Aliases{person: map[string]map[string]*Person{}}
	for i := range f.People {
		p := &f.People[i]
		if p.ID == "" {
			return nil, fmt.Errorf("people[%d].id: is required", i)
		}
		if a.person[p.Tenant] == nil {
			a.person[p.Tenant] = map[string]*Person{}
		}
		ids := []string{p.ID}
		for _, idp := range IdPs {
			if id := p.At(idp); id != "" {
				ids = append(ids, id)
			}
		}
		for _, id := range ids {
			if len(id) > 512 || !validText(id) {
				return nil, fmt.Errorf("people[%d]: %q is not a valid user id", i, id)
			}
			k := Fold.Apply(id)
			if other, ok := a.person[p.Tenant][k]; ok && other != p {
				return nil, fmt.Errorf("people[%d]: %q is already an id of %q", i, id, other.ID)
			}
			a.person[p.Tenant][k] = p
		}
	}
	return a, nil
}

func validText(s string) bool {
	return s != "" && !slices.ContainsFunc([]rune(s), func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd })
}

// Lookup returns the person one of whose ids is id, in tenant.
func (a *Aliases) Lookup(tenant, id string) (*Person, bool) {
	if a == nil || id == "" {
		return nil, false
	}
	k := Fold.Apply(id)
	if p, ok := a.person[tenant][k]; ok {
		return p, true
	}
	p, ok := a.person[""][k]
	return p, ok
}

// Len is the number of ids the map knows.
func (a *Aliases) Len() int {
	if a == nil {
		return 0
	}
	n := 0
	for _, m := range a.person {
		n += len(m)
	}
	return n
}
