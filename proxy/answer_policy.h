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
#include "common/ident.h"
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
	POLICY_STATELESS,	/* http-01, no entry, a [stateless] rule: answer it */
};

/* What an HTTP request head asks of the store. */
struct http01_ask {
	bool asks;		/* GET or HEAD of the challenge path */
	bool head;		/* HEAD: the answer carries no body */
	struct slice token;	/* the path's last segment, in h's buffer */
};

void policy_http01_ask(const struct http_head *h, struct http01_ask *ask);

/*
 * The [stateless] rule that answers ask: the first section, in file
 * order, whose identifiers cover h's Host, when the token asked is a
 * valid one. NULL when none does (or nothing is asked).
 */
const struct cfg_stateless *policy_stateless_rule(const struct http01_ask *ask,
						  const struct http_head *h,
						  const struct cfg *cfg);

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
 * rule: what policy_stateless_rule() found, or NULL. A stored entry wins
 * over the rule, even one that does not answer this Host: the token is
 * then someone's pushed challenge, and a miss.
 */
enum policy_action policy_http01(const struct http01_ask *ask,
				 const struct http_head *h,
				 const struct store_entry *e,
				 const struct cfg_stateless *rule,
				 enum cfg_miss miss);

/* The stateless answer's body "<token>.<thumbprint>": room for it. */
#define STATELESS_BODY_MAX (TOKEN_MAX + 1 + THUMBPRINT_LEN)

/* Writes the stateless answer for ask under rule into buf; its length. */
size_t policy_stateless_body(const struct http01_ask *ask,
			     const struct cfg_stateless *rule,
			     char buf[STATELESS_BODY_MAX]);

/*
 * The REST responder: a PUT or DELETE of the challenge path is a client
 * storing or removing its challenge (simple-acme's REST validation). The
 * proxy never writes: it hands such a request, with a PROXY v2 header
 * carrying the client's address, to the API's REST listener, which makes
 * every check again. What the proxy decides here is only whether the
 * request may go there at all, so that no one without the bearer token of
 * a client allowed to use it reaches the API from port 80, and no PUT or
 * DELETE of a challenge path ever reaches an upstream.
 */
struct rest_ask {
	bool asks;		/* PUT or DELETE of the challenge path */
	bool put;
	struct slice token;	/* the path's last segment, in h's buffer */
};

void policy_rest_ask(const struct http_head *h, struct rest_ask *ask);

/* The largest body a REST PUT may carry: the reference responder's. */
#define REST_BODY_MAX 500

enum rest_verdict {
	REST_HAND_OFF = 0,	/* to the API's REST listener */
	REST_NO_BEARER,		/* 401: not one Authorization: Bearer field */
	REST_UNKNOWN_TOKEN,	/* 401: no client has that token */
	REST_SOURCE_REFUSED,	/* 403: the peer is outside the client's cidrs */
	REST_NOT_ENABLED,	/* 403: the client has no rest_responder */
	REST_BAD_BODY,		/* 400: a PUT body not of 1..REST_BODY_MAX bytes */
};

/*
 * In the order the API checks the same things, so that both give one
 * answer. bearer: the request carries one Authorization field and it is
 * Bearer credentials; cl: the client those name (NULL: none); peer: the
 * client's address. A body, PUT or DELETE, must have a Content-Length
 * (no chunked) of at most REST_BODY_MAX; a PUT's at least 1.
 */
enum rest_verdict policy_rest(const struct rest_ask *ask,
			      const struct http_head *h, bool bearer,
			      const struct cfg_client *cl,
			      const struct sockaddr *peer);

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
