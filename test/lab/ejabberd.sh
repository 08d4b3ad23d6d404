# shellcheck shell=sh
# xtrunk test lab: an ejabberd 23.01 leaf (Debian package), loopback only.
#
# Source from a POSIX sh script (dash is fine), with EJ_LIBDIR (or
# LAB_LIBDIR) set to the directory holding this file and ejabberd.yml.in:
#
#   . "$LAB_LIBDIR/ejabberd.sh"
#   trap ejabberd_stop EXIT
#   EJ_PEERS="a.example=127.0.0.10" ejabberd_setup "$LAB_DIR/e"
#   ejabberd_start                      # also registers $EJ_ACCOUNTS
#   ... xclient.py --from-host 127.0.0.5 ...
#   ejabberd_stop
#
# What runs (all started here, tracked by PID in EJ_PIDS and $EJ_DIR/pids,
# ended by ejabberd_stop: TERM, bounded wait, KILL):
#   dnsmasq   $EJ_DNS_ADDR:53 (udp+tcp), authoritative for "example" and
#             "lab": $EJ_DOMAIN and every EJ_PEERS domain (A + SRV
#             _xmpp-server._tcp -> DOMAIN:5269), NXDOMAIN for the rest.
#   epmd      $EJ_ADDR:$EJ_EPMD_PORT (plus 127.0.0.1, epmd always adds it),
#             a private port, run in the foreground (not -daemon) so that its
#             PID is ours; the VM runs with -start_epmd false.
#   ejabberd  one Erlang VM (beam.smp, node ejabberd@$EJ_ADDR) as user
#             ejabberd, c2s $EJ_ADDR:5222, s2s $EJ_ADDR:5269, Erlang
#             distribution on $EJ_ADDR only, own cookie ($EJ_DIR/home),
#             config, spool and logs in $EJ_DIR. Its children
#             (erl_child_setup, inet_gethost) are ended with it, by PID.
#
# DNS: ejabberd 23.01 resolves SRV with Erlang's inet_res (ERL_INETRC) but
# A/AAAA through libc (inetrc "native" lookup = inet_gethost, getaddrinfo),
# which reads only /etc/resolv.conf and /etc/hosts. The VM therefore runs
# in a private mount namespace (unshare --mount --propagation private) in
# which $EJ_DIR/resolv.conf (nameserver $EJ_DNS_ADDR, port 53 as libc
# requires) and $EJ_DIR/hosts (localhost, the host name, $EJ_DOMAIN) are
# bind-mounted over /etc/resolv.conf and /etc/hosts; its inetrc points at
# the same two files. The machine's own files are never read or changed by
# ejabberd and never written by this script.
#
# Settings (environment, before ejabberd_setup):
#   EJ_DOMAIN (e.example)  EJ_ADDR (127.0.0.5)  EJ_DNS_ADDR (127.0.0.15)
#   EJ_EPMD_PORT (4375)    EJ_LOGLEVEL (info; debug logs every stanza)
#   EJ_PEERS  "DOMAIN=ADDR ..."  where ejabberd's s2s finds each peer domain
#             (default: a.example and b.example at the relay 127.0.0.10)
#   EJ_ACCOUNTS (erin)  EJ_PW (default $LAB_PW, else lab-pw-1)
#   EJ_S2S_STARTTLS (required|optional)
#   EJ_TRUST_CA (0): 1 gives ejabberd the lab CA as ca_file, so peers with
#             lab certificates authenticate by SASL EXTERNAL; 0 = dialback.
#   EJ_DIALBACK (1): 0 leaves mod_s2s_dialback out: ejabberd then neither
#             offers nor accepts dialback and, as initiator, verifies the
#             peer's certificate strictly (no dialback fallback), so s2s in
#             both directions needs a certificate that verifies against
#             ca_file (EJ_TRUST_CA=1) and SASL EXTERNAL.
#   EJ_CA_CERT, EJ_CA_KEY: CA that signs the e.example certificate (default:
#             lab.sh's secure-mode enclave CA $LAB_DIR/enclave/ca.pem + ca.key
#             if it exists, else $LAB_DIR/ca.pem and $LAB_DIR/pki/ca.key from
#             lab.sh; a CA of its own in $EJ_DIR/pki if neither exists).
#   EJ_ISSUER (auto): how the e.example certificate is made: certtool (RSA,
#             DNS-ID) or xtrunkctl (`xtrunkctl issue`, ECDSA, DNS-ID, no
#             xmppAddr, as the relay's enclave CA issues them); auto =
#             xtrunkctl for the enclave CA, certtool otherwise.
#   EJ_XTRUNKCTL: the xtrunkctl binary (default $LAB_XTRUNKCTL, else
#             $EJ_LIBDIR/../../build/xtrunkctl).
#   EJ_START_TIMEOUT (60 s to listen), EJ_CTL_TIMEOUT (30 s per ejabberdctl)

: "${EJ_LIBDIR:=${LAB_LIBDIR:-}}"
if [ -z "$EJ_LIBDIR" ] && [ -n "${BASH_SOURCE:-}" ]; then
	# shellcheck disable=SC3028,SC3054
	EJ_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fi
: "${EJ_DOMAIN:=e.example}"
: "${EJ_ADDR:=127.0.0.5}"
: "${EJ_DNS_ADDR:=127.0.0.15}"
: "${EJ_EPMD_PORT:=4375}"
: "${EJ_LOGLEVEL:=info}"
: "${EJ_PEERS:=a.example=127.0.0.10 b.example=127.0.0.10}"
: "${EJ_ACCOUNTS:=erin}"
: "${EJ_PW:=${LAB_PW:-lab-pw-1}}"
: "${EJ_S2S_STARTTLS:=required}"
: "${EJ_TRUST_CA:=0}"
: "${EJ_DIALBACK:=1}"
: "${EJ_ISSUER:=auto}"
: "${EJ_XTRUNKCTL:=${LAB_XTRUNKCTL:-}}"
: "${EJ_CA_CERT:=}"
: "${EJ_CA_KEY:=}"
: "${EJ_START_TIMEOUT:=60}"
: "${EJ_CTL_TIMEOUT:=30}"
EJ_USER=ejabberd
EJ_DIR=""
EJ_NODE=""
EJ_CERT_ISSUER=""   # what ejabberd_setup used: certtool|xtrunkctl
EJ_PIDS=""

ej_log() { printf 'ejabberd.sh: %s\n' "$*" >&2; }
ej_die() { printf 'ejabberd.sh: error: %s\n' "$*" >&2; return 1; }
ej_now_ms() { date +%s%3N; }
ej_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

ej_track() { # NAME PID
	EJ_PIDS="$EJ_PIDS $1:$2"
	[ -n "$EJ_DIR" ] && printf '%s %s\n' "$1" "$2" >>"$EJ_DIR/pids"
	return 0
}
ej_pid_of() { # NAME -> PID
	_ejp=""
	for _eje in $EJ_PIDS; do
		[ "${_eje%%:*}" = "$1" ] && _ejp=${_eje#*:}
	done
	[ -n "$_ejp" ] && echo "$_ejp"
}

# ej_wait_listen tcp|udp ADDR PORT TIMEOUT [PID] — bounded, no probe connection.
ej_wait_listen() {
	_ejend=$(($(date +%s) + $4))
	[ "$1" = udp ] && _ejss=-Hlun || _ejss=-Hltn
	while :; do
		ss "$_ejss" "src $2:$3" 2>/dev/null | grep -q . && return 0
		if [ -n "${5:-}" ] && ! ej_alive "$5"; then
			ej_log "process $5 died while waiting for $1 $2:$3"
			return 1
		fi
		if [ "$(date +%s)" -ge "$_ejend" ]; then
			ej_log "timeout (${4}s) waiting for $1 $2:$3"
			return 1
		fi
		sleep 0.05
	done
}

# ---------------------------------------------------------------- setup

_ej_cert() { # -> $EJ_DIR/$EJ_DOMAIN.pem (certificate + key, as ejabberd wants)
	_ejk="$EJ_DIR/pki/$EJ_DOMAIN.key"
	if [ "$EJ_CERT_ISSUER" = xtrunkctl ]; then
		_ej_cert_xtrunkctl
		return
	fi
	# DNS-ID only: no xmpp_name (id-on-xmppAddr), see DESIGN.md.
	cat >"$EJ_DIR/pki/$EJ_DOMAIN.tmpl" <<EOF
cn = "$EJ_DOMAIN"
organization = "xtrunk lab"
dns_name = "$EJ_DOMAIN"
serial = $(od -An -tu4 -N4 /dev/urandom | tr -d ' ')
expiration_days = 3
tls_www_server
tls_www_client
signing_key
encryption_key
EOF
	certtool --generate-privkey --no-text --key-type=rsa --bits=2048 --outfile "$_ejk" 2>/dev/null &&
	certtool --generate-certificate --no-text --load-privkey "$_ejk" \
		--load-ca-certificate "$EJ_CA_CERT" --load-ca-privkey "$EJ_CA_KEY" \
		--template "$EJ_DIR/pki/$EJ_DOMAIN.tmpl" --outfile "$EJ_DIR/pki/$EJ_DOMAIN.crt" 2>/dev/null ||
		{ ej_die "certificate for $EJ_DOMAIN failed"; return 1; }
	cat "$EJ_DIR/pki/$EJ_DOMAIN.crt" "$EJ_CA_CERT" "$_ejk" >"$EJ_DIR/$EJ_DOMAIN.pem"
	chmod 600 "$EJ_DIR/$EJ_DOMAIN.pem" "$_ejk"
}

_ej_cert_xtrunkctl() { # the same file, issued by `xtrunkctl issue` (no --xmppaddr)
	_ejx=${EJ_XTRUNKCTL:-$EJ_LIBDIR/../../build/xtrunkctl}
	[ -f "$_ejx" ] && [ -x "$_ejx" ] ||
		{ ej_die "xtrunkctl '$_ejx' missing (make all, or set EJ_XTRUNKCTL)"; return 1; }
	rm -f "$EJ_DIR/pki/$EJ_DOMAIN.pem" "$EJ_DIR/pki/$EJ_DOMAIN.key"   # it never overwrites
	"$_ejx" issue -c "$EJ_CA_CERT" -k "$EJ_CA_KEY" -o "$EJ_DIR/pki" -d 3 "$EJ_DOMAIN" \
		>"$EJ_DIR/pki/xtrunkctl.log" 2>&1 ||
		{ ej_die "xtrunkctl issue $EJ_DOMAIN failed:"; cat "$EJ_DIR/pki/xtrunkctl.log" >&2; return 1; }
	cat "$EJ_DIR/pki/$EJ_DOMAIN.pem" "$EJ_CA_CERT" "$EJ_DIR/pki/$EJ_DOMAIN.key" >"$EJ_DIR/$EJ_DOMAIN.pem"
	chmod 600 "$EJ_DIR/$EJ_DOMAIN.pem" "$EJ_DIR/pki/$EJ_DOMAIN.key"
}

_ej_own_ca() {
	EJ_CA_CERT="$EJ_DIR/pki/ca.pem" EJ_CA_KEY="$EJ_DIR/pki/ca.key"
	printf 'cn = "xtrunk lab CA (ejabberd)"\norganization = "xtrunk lab"\nserial = 1\nexpiration_days = 3\nca\ncert_signing_key\ncrl_signing_key\n' \
		>"$EJ_DIR/pki/ca.tmpl"
	certtool --generate-privkey --no-text --key-type=rsa --bits=2048 --outfile "$EJ_CA_KEY" 2>/dev/null &&
	certtool --generate-self-signed --no-text --load-privkey "$EJ_CA_KEY" \
		--template "$EJ_DIR/pki/ca.tmpl" --outfile "$EJ_CA_CERT" 2>/dev/null ||
		{ ej_die "CA generation failed"; return 1; }
}

_ej_dns_conf() {
	{
		echo "# dnsmasq for ejabberd ($EJ_DOMAIN); generated by test/lab/ejabberd.sh"
		echo "keep-in-foreground"
		echo "no-resolv"
		echo "no-hosts"
		echo "no-poll"
		echo "bind-interfaces"
		echo "listen-address=$EJ_DNS_ADDR"
		echo "port=53"
		echo "pid-file="
		echo "log-queries"
		echo "log-facility=$EJ_DIR/dns.log"
		echo "local=/example/"
		echo "local=/lab/"
		echo "host-record=$EJ_DOMAIN,$EJ_ADDR"
		for _ejpe in $EJ_PEERS; do
			_ejd=${_ejpe%%=*} _eja=${_ejpe#*=}
			echo "host-record=$_ejd,$_eja"
			echo "srv-host=_xmpp-server._tcp.$_ejd,$_ejd,5269,0,1"
		done
	} >"$EJ_DIR/dns.conf"
}

# ejabberd_setup DIR — writes config, certificate, DNS and namespace files,
# cookie, spool and log directories under DIR. Starts nothing.
ejabberd_setup() {
	EJ_DIR=$1
	[ -n "$EJ_DIR" ] || { ej_die "usage: ejabberd_setup DIR"; return 1; }
	[ "$(id -u)" -eq 0 ] || { ej_die "must run as root (mount namespace, port 53)"; return 1; }
	id $EJ_USER >/dev/null 2>&1 || { ej_die "no $EJ_USER user (apt-get install ejabberd)"; return 1; }
	for _ejc in erl epmd ejabberdctl dnsmasq certtool unshare setpriv ss timeout; do
		command -v $_ejc >/dev/null || { ej_die "$_ejc missing"; return 1; }
	done
	[ -f "$EJ_LIBDIR/ejabberd.yml.in" ] || { ej_die "EJ_LIBDIR/ejabberd.yml.in not found (EJ_LIBDIR='$EJ_LIBDIR')"; return 1; }
	_ejt0=$(ej_now_ms)
	mkdir -p "$EJ_DIR" || return 1
	EJ_DIR=$(cd "$EJ_DIR" && pwd)
	EJ_NODE="ejabberd@$EJ_ADDR"
	rm -rf "$EJ_DIR/spool" "$EJ_DIR/log"
	mkdir -p "$EJ_DIR/pki" "$EJ_DIR/spool" "$EJ_DIR/log" "$EJ_DIR/home" || return 1
	chmod 755 "$EJ_DIR"
	chmod 700 "$EJ_DIR/pki"
	: >"$EJ_DIR/pids"

	_ejenclave=0
	if [ -z "$EJ_CA_CERT" ] && [ -n "${LAB_DIR:-}" ] && [ -f "$LAB_DIR/enclave/ca.key" ]; then
		EJ_CA_CERT="$LAB_DIR/enclave/ca.pem" EJ_CA_KEY="$LAB_DIR/enclave/ca.key" _ejenclave=1
	fi
	if [ -z "$EJ_CA_CERT" ] && [ -n "${LAB_DIR:-}" ] && [ -f "$LAB_DIR/pki/ca.key" ]; then
		EJ_CA_CERT="$LAB_DIR/ca.pem" EJ_CA_KEY="$LAB_DIR/pki/ca.key"
	fi
	if [ -z "$EJ_CA_CERT" ]; then
		_ej_own_ca || return 1
	fi
	EJ_CERT_ISSUER=$EJ_ISSUER
	if [ "$EJ_CERT_ISSUER" = auto ]; then
		[ "$_ejenclave" = 1 ] && EJ_CERT_ISSUER=xtrunkctl || EJ_CERT_ISSUER=certtool
	fi
	case "$EJ_CERT_ISSUER" in certtool|xtrunkctl) ;; *) ej_die "EJ_ISSUER: auto, certtool or xtrunkctl, not '$EJ_ISSUER'"; return 1 ;; esac
	_ej_cert || return 1

	# Resolver files for the private mount namespace and for inetrc.
	# (the machine's host name too: Erlang looks it up at start)
	printf '127.0.0.1\tlocalhost %s\n%s\t%s\n' "$(hostname)" "$EJ_ADDR" "$EJ_DOMAIN" >"$EJ_DIR/hosts"
	printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$EJ_DNS_ADDR" >"$EJ_DIR/resolv.conf"
	cat >"$EJ_DIR/inetrc" <<EOF
{lookup, ["file", "native"]}.
{hosts_file, "$EJ_DIR/hosts"}.
{resolv_conf, "$EJ_DIR/resolv.conf"}.
EOF
	_ej_dns_conf

	if [ "$EJ_TRUST_CA" = 1 ]; then
		_ejca="ca_file: \"$EJ_CA_CERT\""
		cp "$EJ_CA_CERT" "$EJ_DIR/ca.pem" && _ejca="ca_file: \"$EJ_DIR/ca.pem\""
	else
		_ejca="# no ca_file: the lab CA is not trusted (EJ_TRUST_CA=0), s2s uses dialback"
	fi
	if [ "$EJ_DIALBACK" = 0 ]; then
		_ejdb="  # no mod_s2s_dialback (EJ_DIALBACK=0): s2s by certificate (SASL EXTERNAL) only"
	else
		_ejdb="  mod_s2s_dialback: {}"
	fi
	_ejip=$(echo "$EJ_ADDR" | tr . ,)
	sed -e "s|@DIR@|$EJ_DIR|g" -e "s|@ADDR@|$EJ_ADDR|g" -e "s|@DOMAIN@|$EJ_DOMAIN|g" \
		-e "s|@LOGLEVEL@|$EJ_LOGLEVEL|g" -e "s|@S2S_STARTTLS@|$EJ_S2S_STARTTLS|g" \
		-e "s|@CA_FILE_LINE@|$_ejca|" -e "s|@DIALBACK_LINE@|$_ejdb|" \
		"$EJ_LIBDIR/ejabberd.yml.in" >"$EJ_DIR/ejabberd.yml" || return 1
	if grep -q '@[A-Z_]*@' "$EJ_DIR/ejabberd.yml"; then
		ej_die "unreplaced template words in $EJ_DIR/ejabberd.yml"; return 1
	fi

	# ejabberdctl (for register, status, ...) reads this instead of
	# /etc/ejabberd/ejabberdctl.cfg; ERL_OPTIONS keeps its client nodes off
	# the system epmd and on our address.
	cat >"$EJ_DIR/ejabberdctl.cfg" <<EOF
# generated by test/lab/ejabberd.sh
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -start_epmd false -kernel inet_dist_use_interface {$_ejip}"
EJABBERD_BYPASS_WARNINGS=true
EOF
	# Own Erlang cookie: HOME of the VM and of ejabberdctl is $EJ_DIR/home.
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n' | tr a-f A-F >"$EJ_DIR/home/.erlang.cookie"
	chown -R $EJ_USER:$EJ_USER "$EJ_DIR"
	chmod 400 "$EJ_DIR/home/.erlang.cookie"
	chown root:root "$EJ_DIR/dns.conf" "$EJ_DIR/pids"
	setpriv --reuid=$EJ_USER --regid=$EJ_USER --init-groups test -r "$EJ_DIR/ejabberd.yml" ||
		{ ej_die "user $EJ_USER cannot read $EJ_DIR (a parent directory is not searchable?)"; return 1; }
	ej_log "setup in $EJ_DIR ($EJ_DOMAIN certificate by $EJ_CERT_ISSUER from $EJ_CA_CERT, trust CA $EJ_TRUST_CA, dialback $EJ_DIALBACK): $(($(ej_now_ms) - _ejt0)) ms"
}

# ---------------------------------------------------------------- run

# ejabberd_ctl ARGS... — ejabberdctl against our node (bounded).
ejabberd_ctl() {
	timeout -k 3 "$EJ_CTL_TIMEOUT" setpriv --reuid=$EJ_USER --regid=$EJ_USER --init-groups --reset-env \
		env HOME="$EJ_DIR/home" ERL_EPMD_PORT="$EJ_EPMD_PORT" \
		/usr/sbin/ejabberdctl --node "$EJ_NODE" --config-dir "$EJ_DIR" \
		--ctl-config "$EJ_DIR/ejabberdctl.cfg" --config "$EJ_DIR/ejabberd.yml" \
		--logs "$EJ_DIR/log" --spool "$EJ_DIR/spool" "$@"
}

_ej_erl_libs() {
	_ejl=$(sed -n "s/^ERL_LIBS='\(.*\)'$/\1/p" /usr/sbin/ejabberdctl 2>/dev/null)
	echo "${_ejl:-/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)}"
}

# ejabberd_start — DNS, epmd, the VM; waits for c2s and s2s; registers
# $EJ_ACCOUNTS with password $EJ_PW.
ejabberd_start() {
	[ -n "$EJ_DIR" ] || { ej_die "ejabberd_setup first"; return 1; }
	_ejt0=$(ej_now_ms)
	if ! ej_alive "$(ej_pid_of dns)"; then
		dnsmasq --conf-file="$EJ_DIR/dns.conf" >"$EJ_DIR/dns.out" 2>&1 &
		ej_track dns $!
		ej_wait_listen udp "$EJ_DNS_ADDR" 53 5 "$(ej_pid_of dns)" ||
			{ ej_die "dnsmasq did not start:"; cat "$EJ_DIR/dns.out" >&2; return 1; }
	fi
	if ss -Hltn "sport = :$EJ_EPMD_PORT" 2>/dev/null | grep -q .; then
		ej_die "port $EJ_EPMD_PORT (EJ_EPMD_PORT) is already in use:"
		ss -Hltnp "sport = :$EJ_EPMD_PORT" >&2
		return 1
	fi
	# Foreground epmd (no -daemon): setpriv execs it, so $! is epmd (a
	# shell function here would put a subshell in between).
	setpriv --reuid=$EJ_USER --regid=$EJ_USER --init-groups --reset-env /usr/bin/epmd -port "$EJ_EPMD_PORT" -address "$EJ_ADDR" >"$EJ_DIR/log/epmd.out" 2>&1 &
	ej_track epmd $!
	ej_wait_listen tcp "$EJ_ADDR" "$EJ_EPMD_PORT" 5 "$(ej_pid_of epmd)" ||
		{ ej_die "epmd did not start:"; cat "$EJ_DIR/log/epmd.out" >&2; return 1; }

	# unshare (no --fork) -> sh -> setpriv -> env -> erl -> erlexec -> beam.smp,
	# every step an exec: $! is the VM's PID.
	_ejip=$(echo "$EJ_ADDR" | tr . ,)
	# shellcheck disable=SC2016
	EJ_USER=$EJ_USER EJ_EPMD_PORT=$EJ_EPMD_PORT EJ_NODE=$EJ_NODE EJ_IP=$_ejip \
	EJ_ERL_LIBS=$(_ej_erl_libs) \
	unshare --mount --propagation private -- /bin/sh -c '
		mount --bind "$1/hosts" /etc/hosts &&
		mount --bind "$1/resolv.conf" /etc/resolv.conf || exit 97
		d=$1; shift
		exec setpriv --reuid="$EJ_USER" --regid="$EJ_USER" --init-groups --reset-env \
			env HOME="$d/home" \
			EJABBERD_CONFIG_PATH="$d/ejabberd.yml" \
			EJABBERD_LOG_PATH="$d/log/ejabberd.log" \
			ERL_CRASH_DUMP="$d/log/erl_crash.dump" \
			ERL_INETRC="$d/inetrc" \
			ERL_EPMD_PORT="$EJ_EPMD_PORT" \
			ERL_LIBS="$EJ_ERL_LIBS" \
			ERL_MAX_PORTS=32000 ERL_MAX_ETS_TABLES=1400 \
			CONTRIB_MODULES_PATH="$d/modules" \
			SCRIPT_DIR=/usr/sbin \
			/usr/bin/erl -name "$EJ_NODE" -noinput -noshell \
			+P 250000 -env ERL_CRASH_DUMP_BYTES 0 \
			-start_epmd false -kernel inet_dist_use_interface "{$EJ_IP}" \
			-mnesia dir "\"$d/spool\"" -s ejabberd
	' ejabberd-lab "$EJ_DIR" >"$EJ_DIR/log/console.log" 2>&1 </dev/null &
	ej_track ejabberd $!
	_ejpid=$(ej_pid_of ejabberd)
	if ! ej_wait_listen tcp "$EJ_ADDR" 5222 "$EJ_START_TIMEOUT" "$_ejpid" ||
	   ! ej_wait_listen tcp "$EJ_ADDR" 5269 10 "$_ejpid"; then
		ej_die "ejabberd did not start; see $EJ_DIR/log"
		tail -n 20 "$EJ_DIR/log/console.log" "$EJ_DIR/log/ejabberd.log" "$EJ_DIR/log/error.log" >&2 2>/dev/null
		return 1
	fi
	ej_log "ejabberd ($EJ_DOMAIN, pid $_ejpid) listening: $(($(ej_now_ms) - _ejt0)) ms"
	# The listeners open before Mnesia has loaded its tables (ejabberd
	# logs "Waiting for Mnesia synchronization" after them): a register
	# sent then fails with {no_exists,passwd,...}. "ejabberdctl status"
	# exits 0 only once the application has finished starting.
	_ejt1=$(ej_now_ms)
	_ejdl=$((_ejt1 + EJ_START_TIMEOUT * 1000))
	until ejabberd_ctl status >>"$EJ_DIR/log/ctl.log" 2>&1; do
		if ! ej_alive "$_ejpid" || [ "$(ej_now_ms)" -ge "$_ejdl" ]; then
			ej_die "ejabberd did not finish starting in $EJ_START_TIMEOUT s (EJ_START_TIMEOUT); see $EJ_DIR/log"
			tail -n 5 "$EJ_DIR/log/ctl.log" "$EJ_DIR/log/ejabberd.log" >&2 2>/dev/null
			return 1
		fi
		sleep 0.2
	done
	ej_log "ejabberd started: $(($(ej_now_ms) - _ejt1)) ms"
	_ejt1=$(ej_now_ms)
	for _eju in $EJ_ACCOUNTS; do
		ejabberd_ctl register "$_eju" "$EJ_DOMAIN" "$EJ_PW" >>"$EJ_DIR/log/ctl.log" 2>&1 ||
			{ ej_die "ejabberdctl register $_eju@$EJ_DOMAIN failed:"; tail -n 5 "$EJ_DIR/log/ctl.log" >&2; return 1; }
	done
	ej_log "registered $EJ_ACCOUNTS: $(($(ej_now_ms) - _ejt1)) ms"
}

# _ej_descendants PID — every descendant's PID (erl_child_setup, inet_gethost).
_ej_descendants() {
	for _ejc in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$_ejc"
		_ej_descendants "$_ejc"
	done
}

_ej_end() { # NAME PID SECONDS — TERM, bounded wait, KILL; reaps our children.
	ej_alive "$2" || { wait "$2" 2>/dev/null; return 0; }
	kill -TERM "$2" 2>/dev/null
	_ejend=$(($(date +%s) + $3))
	while ej_alive "$2" && [ "$(date +%s)" -lt "$_ejend" ]; do
		# a zombie child of ours counts as gone
		[ "$(ps -o stat= -p "$2" 2>/dev/null | cut -c1)" = Z ] && break
		sleep 0.05
	done
	if ej_alive "$2" && [ "$(ps -o stat= -p "$2" 2>/dev/null | cut -c1)" != Z ]; then
		ej_log "$1 ($2) ignored SIGTERM for ${3}s; killing"
		kill -KILL "$2" 2>/dev/null
	fi
	wait "$2" 2>/dev/null
	return 0
}

# ejabberd_stop — ends the VM (and its children), epmd and dnsmasq, by PID.
ejabberd_stop() {
	_ejvm=$(ej_pid_of ejabberd)
	_ejkids=""
	[ -n "$_ejvm" ] && _ejkids=$(_ej_descendants "$_ejvm")
	# beam.smp stops cleanly (init:stop) on SIGTERM.
	[ -n "$_ejvm" ] && _ej_end ejabberd "$_ejvm" 15
	for _ejk in $_ejkids; do
		_ej_end "ejabberd-child" "$_ejk" 2
	done
	for _ejn in epmd dns; do
		_ejp=$(ej_pid_of $_ejn)
		[ -n "$_ejp" ] && _ej_end "$_ejn" "$_ejp" 5
	done
	# Anything of the ejabberd user still running from our directory (an
	# ejabberdctl client node orphaned by a timeout): report it, end it by PID.
	if [ -n "$EJ_DIR" ]; then
		for _ejp in $(ps -u $EJ_USER -o pid= 2>/dev/null); do
			if tr '\0' ' ' <"/proc/$_ejp/cmdline" 2>/dev/null | grep -qF -- "$EJ_DIR/"; then
				ej_log "left over: $_ejp $(tr '\0' ' ' <"/proc/$_ejp/cmdline" 2>/dev/null | cut -c1-120); killing"
				kill -KILL "$_ejp" 2>/dev/null
			fi
		done
	fi
	EJ_PIDS=""
	return 0
}
