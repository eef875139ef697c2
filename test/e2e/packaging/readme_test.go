package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// TestReadmePermissionsMatchRBAC: the tables of README.md's "Permissions, and why" list, rule
// by rule, what config/rbac/role.yaml (its ClusterRole, then its Role) and
// config/selfmanaged/role.yaml grant: the same group, resource, verb and name, nothing more,
// nothing less.
func TestReadmePermissionsMatchRBAC(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "### Permissions, and why")
	if start < 0 {
		t.Fatal(`README.md has no "### Permissions, and why"`)
	}
	section := readme[start+1:]
	section = section[:strings.Index(section, "\n### ")]
	tables := markdownTables(section)
	if len(tables) != 3 {
		t.Fatalf("%d tables in the section, want 3 (ClusterRole, Role, self-managed)", len(tables))
	}
	generated := map[string][]rbacv1.PolicyRule{
		"ClusterRole":              into[rbacv1.ClusterRole](t, readObjectOfKind(t, "config/rbac/role.yaml", "ClusterRole")).Rules,
		"Role":                     into[rbacv1.Role](t, readObjectOfKind(t, "config/rbac/role.yaml", "Role")).Rules,
		"self-managed ClusterRole": into[rbacv1.ClusterRole](t, readObjectOfKind(t, "config/selfmanaged/role.yaml", "ClusterRole")).Rules,
		"self-managed Role":        into[rbacv1.Role](t, readObjectOfKind(t, "config/selfmanaged/role.yaml", "Role")).Rules,
	}
	documented := map[string][]string{}
	for i, table := range tables {
		for _, row := range table {
			var role, resources, verbs string
			switch len(row) {
			case 3:
				role, resources, verbs = []string{"ClusterRole", "Role"}[min(i, 1)], row[0], row[1]
			case 4:
				role = "self-managed " + strings.Fields(row[0])[0]
				resources, verbs = row[1], row[2]
			default:
				t.Fatalf("row %v: %d cells", row, len(row))
			}
			tuples, err := parseRow(resources, verbs)
			if err != nil {
				t.Fatalf("README row %q: %v", strings.Join(row, " | "), err)
			}
			documented[role] = append(documented[role], tuples...)
		}
	}
	for role, rules := range generated {
		want := expand(rules)
		got := documented[role]
		slices.Sort(got)
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s grants %s, which README.md does not list", role, w)
			}
		}
		for _, g := range got {
			if !slices.Contains(want, g) {
				t.Errorf("README.md lists %s for the %s, which it does not grant", g, role)
			}
		}
	}
}

// markdownTables returns the body rows of each table, cells trimmed.
func markdownTables(s string) [][][]string {
	var tables [][][]string
	var cur [][]string
	header := true
	for _, line := range strings.Split(s+"\n", "\n") {
		if !strings.HasPrefix(line, "|") {
			if cur != nil {
				tables = append(tables, cur)
			}
			cur, header = nil, true
			continue
		}
		if header {
			header = false
			cur = [][]string{}
			continue
		}
		if strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		cur = append(cur, cells)
	}
	return tables
}

var (
	resourceRE = regexp.MustCompile("^`([a-z/]+)`(?: \\(([a-z0-9.-]+)\\))?$")
	nameRE     = regexp.MustCompile("^name `([^`]+)` only$")
	verbRE     = regexp.MustCompile("^[a-z]+$")
)

// parseRow turns "`a`, `b` (group), name `n` only" and "get, list" into group/resource/verb/name
// tuples. A group in parentheses applies to the resources before it that have none; no group
// is the core group.
func parseRow(resources, verbs string) ([]string, error) {
	type gr struct{ group, resource string }
	var list []gr
	name := ""
	pending := 0
	for _, part := range strings.Split(resources, ", ") {
		if m := nameRE.FindStringSubmatch(part); m != nil {
			name = m[1]
			continue
		}
		m := resourceRE.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("resource %q", part)
		}
		list = append(list, gr{resource: m[1]})
		pending++
		if m[2] != "" {
			for i := len(list) - pending; i < len(list); i++ {
				list[i].group = m[2]
			}
			pending = 0
		}
	}
	var out []string
	for _, v := range strings.Split(verbs, ", ") {
		if !verbRE.MatchString(v) {
			return nil, fmt.Errorf("verb %q", v)
		}
		for _, r := range list {
			out = append(out, tuple(r.group, r.resource, v, name))
		}
	}
	return out, nil
}

func tuple(group, resource, verb, name string) string {
	if name != "" {
		name = " " + name
	}
	return fmt.Sprintf("%s %s.%s%s", verb, resource, group, name)
}

func expand(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					for _, n := range names {
						out = append(out, tuple(g, res, v, n))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
