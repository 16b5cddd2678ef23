/*
 * The ACME answering policy, apart from any I/O: which store entry a
 * parsed HTTP request head or ClientHello asks for, and, given what the
 * store holds for it, whether the proxy answers it, refuses it, or relays
 * it like any other traffic. Pure: no allocation, no I/O, no store access
 * (the caller looks the entry up and passes it in).
 */
#ifndef EDGE_ANSWER_POLICY_H
#define EDGE_ANSWER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cfg.h"
#include "common/edge.h"
#include "store/store.h"
#include "wire/http_head.h"
#include "wire/tls_hello.h"

#define ACME_CHALLENGE_PREFIX "/.well-known/acme-challenge/"
#define ACME_TLS_ALPN "acme-tls/1"

enum policy_action {
	POLICY_RELAY = 0,	/* no challenge asked: relay to the upstream */
	POLICY_ANSWER,		/* a challenge with its entry: answer it here */
	POLICY_MISS_RELAY,	/* a challenge with no entry: relay it */
	POLICY_MISS_REFUSE,	/* a challenge with no entry: 404, or an alert */
};

/* What an HTTP request head asks of the store. */
struct http01_ask {
	bool asks;		/* GET or HEAD of the challenge path */
	bool head;		/* HEAD: the answer carries no body */
	struct slice token;	/* the path's last segment, in h's buffer */
};

void policy_http01_ask(const struct http_head *h, struct http01_ask *ask);

/*
 * HTTP/2 with prior knowledge (RFC 9113 §3.3, §3.4) opens with a preface
 * that no HTTP/1 parser takes, and asks no challenge: such a connection is
 * relayed like any other. 1: in (len bytes) begins with the whole
 * preface; 0: in is a beginning of it, more is needed; -1: neither.
 */
int policy_h2_preface(const uint8_t *in, size_t len);

/*
 * e: the live entry the store holds for ask->token, NULL when none. An
 * entry bound to an identifier answers only when h's Host is that name.
 */
enum policy_action policy_http01(const struct http01_ask *ask,
				 const struct http_head *h,
				 const struct store_entry *e,
				 enum cfg_miss miss);

/* What a ClientHello asks of the store. */
struct tls_ask {
	bool asks;		/* offers acme-tls/1, with a name or none */
	/* SNI lower-cased, without its trailing dot; routes a relay too. */
	char name[TLS_SNI_MAX + 1];
	size_t name_len;
};

void policy_tls_ask(const struct tls_hello *h, struct tls_ask *ask);

/*
 * e: the live tls-alpn-01 entry for ask->name, NULL when none (always
 * none without a name: such a hello is a miss like any other).
 */
enum policy_action policy_tls(const struct tls_ask *ask,
			      const struct store_entry *e, enum cfg_miss miss);

#endif
