package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "REGISTRY_"

// envStorage selects the storage driver from the environment
// (REGISTRY_STORAGE=s3), replacing any other.
const envStorage = EnvPrefix + "STORAGE"

// envField is one configuration leaf settable from the environment.
type envField struct {
	name  string   // REGISTRY_STORAGE_S3_BUCKET
	key   []string // storage, s3, bucket
	index []int    // reflect field index path from Config
}

// EnvNames returns the names of all environment variables Load reads into
// configuration keys (besides REGISTRY_STORAGE and the AWS_* fallbacks),
// sorted.
func EnvNames() []string {
	var names []string
	for _, f := range envFields {
		names = append(names, f.name)
	}
	slices.Sort(names)
	return names
}

// envFields is derived once from Config's yaml tags.
var envFields = func() map[string]envField {
	m := map[string]envField{}
	walkEnvFields(reflect.TypeFor[Config](), nil, nil, m)
	return m
}()

// walkEnvFields records the leaves of struct type t: strings, bools,
// integers and string lists. Maps (log.fields) are file-only.
func walkEnvFields(t reflect.Type, key []string, index []int, out map[string]envField) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		k := append(slices.Clone(key), tag)
		idx := append(slices.Clone(index), i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			walkEnvFields(ft, k, idx, out)
		case settableKind(ft):
			name := EnvPrefix + strings.ToUpper(strings.Join(k, "_"))
			out[name] = envField{name: name, key: k, index: idx}
		}
	}
}

func settableKind(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// envMap turns KEY=value pairs into a map; later duplicates win.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// isDriverKey reports whether key lies inside a storage driver's section.
func isDriverKey(key []string) bool {
	return len(key) > 2 && key[0] == "storage" && slices.Contains(driverNames, key[1])
}

// applyEnv applies the REGISTRY_* overrides of env to c. Variables that name
// no configuration key are ignored (container links define REGISTRY_PORT
// and the like). fileDriver tells whether a file selected the storage
// driver; if not, driver parameters in env replace the default driver.
func (c *Config) applyEnv(env map[string]string, fileDriver bool) error {
	var fields []envField
	driverInEnv := false
	for name := range env {
		if f, ok := envFields[name]; ok {
			fields = append(fields, f)
			driverInEnv = driverInEnv || isDriverKey(f.key)
		}
	}
	slices.SortFunc(fields, func(a, b envField) int { return strings.Compare(a.name, b.name) })

	if d, ok := env[envStorage]; ok {
		if !slices.Contains(driverNames, d) {
			return fmt.Errorf("%s: unsupported storage driver %q (supported: %s)", envStorage, d, strings.Join(driverNames, ", "))
		}
		// Keep the section of d (from the defaults or the file), drop the others.
		keep := c.Storage
		c.Storage.clearDrivers()
		switch d {
		case DriverFilesystem:
			c.Storage.Filesystem = keep.Filesystem
		case DriverInMemory:
			c.Storage.InMemory = keep.InMemory
		case DriverS3:
			c.Storage.S3 = keep.S3
		}
		c.Storage.selectDriver(d)
	} else if driverInEnv && !fileDriver {
		// Driver parameters in the environment replace the embedded
		// default driver, as a driver named in a file does.
		c.Storage.clearDrivers()
	}

	root := reflect.ValueOf(c).Elem()
	for _, f := range fields {
		if err := setField(root, f, env[f.name]); err != nil {
			return err
		}
	}
	return nil
}

// setField parses value into the field f of the Config root, creating
// pointer sections (with their defaults) on the way.
func setField(root reflect.Value, f envField, value string) error {
	v := root
	for n, i := range f.index {
		v = v.Field(i)
		if v.Kind() == reflect.Pointer && n < len(f.index)-1 {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
				if d, ok := v.Interface().(interface{ setDefaults() }); ok {
					d.setDefaults()
				}
			}
			v = v.Elem()
		}
	}
	bad := func(what string) error {
		return fmt.Errorf("%s (%s): %q is not %s", f.name, strings.Join(f.key, "."), value, what)
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(value)
	case reflect.Bool:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return bad("a boolean (true or false)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(value, 10, v.Type().Bits())
		if err != nil {
			return bad("an integer")
		}
		v.SetInt(n)
	case reflect.Slice:
		// A YAML list, as distribution parses it: "[a.pem, b.pem]"; a single
		// value is a one-element list.
		var list []string
		if err := yaml.Unmarshal([]byte(value), &list); err != nil {
			var one string
			if yaml.Unmarshal([]byte(value), &one) != nil {
				return bad("a YAML list of strings")
			}
			list = []string{one}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("%s: unsupported field type %s", f.name, v.Type())
	}
	return nil
}
