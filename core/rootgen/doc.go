// Package rootgen owns the bookkeeping of a token generation authorised by key
// shares: Vault's sys/generate-root flow, and the DR operation token that
// will reuse it. It holds at most one attempt: its nonce, the one-time
// password (OTP) the new token is encoded with, and the key shares given so
// far; and it encodes and decodes a token with an OTP.
//
// The caller (core) drives it in four steps, holding its own lock around
// each call:
//
//  1. Start(nonce, otp) opens an attempt. The caller draws the nonce (a
//     UUID) and, when the operator brought no OTP, draws one with NewOTP.
//  2. Add(nonce, share, required) collects one share of the attempt named
//     by nonce. Below required it returns the progress; at required it hands
//     the shares out (Ready) and forgets them, so the attempt's progress is
//     back to zero whatever the caller finds.
//  3. The caller checks the shares against its seal (unseal key shares under
//     the shamir seal, recovery key shares under the static seal). Shares are
//     checked only there, at the threshold: a share on its own says nothing.
//     A set that does not verify is the caller's 400; the attempt stays open
//     with no progress, as in Vault.
//  4. On success the caller creates the token and calls Complete(nonce,
//     token), which encodes it with the attempt's OTP and ends the attempt:
//     one attempt mints at most one token.
//
// Cancel ends the attempt at any time; Status reports it with Vault's fields
// (never the OTP: the caller returns that once, to whoever started the
// attempt).
//
// # The encoding (Vault 1.12 and later; part of the API, do not change)
//
// The OTP is a string of OTPAlphabet characters exactly as long as the token
// (Vault's otp_length). The encoded token is
//
//	base64.RawStdEncoding( token[i] XOR otp[i] for every byte i )
//
// which is what `vault operator generate-root -decode` and Vault's
// roottoken.DecodeToken undo. A uniformly random OTP used once makes this a
// one-time pad: the encoded token alone says nothing of the token.
//
// This package must never do I/O, draw randomness of its own (NewOTP takes
// the reader), log, know about seals or token stores, or keep anything past
// the process: a restart cancels the attempt, as in Vault.
package rootgen
