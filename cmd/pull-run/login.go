package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-registry/berth/registry/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// authFile is where `login` saves credentials: <root>/auth.json (Docker's config.json format).
func (a *app) authFile() string { return filepath.Join(a.root, "auth.json") }

type loginOptions struct {
	username      string
	password      string
	passwordStdin bool
}

func (a *app) loginCommand() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Long:  "Log in to a registry.\nIf no server is specified, the default is Docker Hub.",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			return a.runLogin(cmd, server, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.username, "username", "u", "", "Username")
	f.StringVarP(&o.password, "password", "p", "", "Password")
	f.BoolVar(&o.passwordStdin, "password-stdin", false, "Take the password from stdin")
	return cmd
}

func (a *app) runLogin(cmd *cobra.Command, server string, o loginOptions) error {
	registry := client.NormalizeRegistry(server)
	if o.password != "" {
		fmt.Fprintln(a.stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
		if o.passwordStdin {
			return errors.New("--password and --password-stdin are mutually exclusive")
		}
	}
	in := bufio.NewReader(a.stdin)
	if o.passwordStdin {
		if o.username == "" {
			return errors.New("must provide --username with --password-stdin")
		}
		b, err := io.ReadAll(in)
		if err != nil {
			return err
		}
		o.password = strings.TrimRight(string(b), "\r\n")
	}
	stdinTTY := false
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		stdinTTY = true
	}
	if o.username == "" {
		if !stdinTTY {
			return errors.New("cannot perform an interactive login from a non TTY device")
		}
		fmt.Fprint(a.stdout, "Username: ")
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("reading username: %w", err)
		}
		o.username = strings.TrimSpace(line)
		if o.username == "" {
			return errors.New("username is required")
		}
	}
	if o.password == "" {
		if !stdinTTY {
			return errors.New("cannot perform an interactive login from a non TTY device")
		}
		fmt.Fprint(a.stdout, "Password: ")
		b, err := term.ReadPassword(int(a.stdin.(*os.File).Fd()))
		fmt.Fprintln(a.stdout)
		if err != nil {
			return fmt.Errorf("reading password: %w", err)
		}
		o.password = string(b)
		if o.password == "" {
			return errors.New("password is required")
		}
	}
	user, pass := o.username, o.password
	c := client.New(client.Options{
		Insecure: a.insecure,
		Credentials: client.CredentialFunc(func(r string) (string, string, error) {
			if r == registry {
				return user, pass, nil
			}
			return "", "", nil
		}),
	})
	if err := c.Ping(cmd.Context(), registry); err != nil {
		return fmt.Errorf("login to %s failed: %w", registry, err)
	}
	if err := client.NewFileStore(a.authFile()).Save(registry, user, pass); err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	fmt.Fprintln(a.stdout, "Login Succeeded")
	return nil
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Long:  "Log out from a registry.\nIf no server is specified, the default is Docker Hub.",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			registry := client.NormalizeRegistry(server)
			err := client.NewFileStore(a.authFile()).Erase(registry)
			if errors.Is(err, client.ErrNotLoggedIn) {
				fmt.Fprintf(a.stdout, "Not logged in to %s\n", registry)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", registry)
			return nil
		},
	}
}
