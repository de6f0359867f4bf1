/*
 * The fair exchange (issues 6, 13, 17; patent figure 3, Abort / Resolve), for spin.
 *
 * Parties: the server S (originator; signature X, its promise the signed escrow of X), the
 * client C (responder; the card's signature Y, its promise the verifiable escrow of Y), the
 * trusted third party T. The S-C channel loses messages; requests to T arrive, and T's answers
 * to S may be lost (S then asks again). Every wait may time out at any moment. At most one party
 * cheats: a cheater does any bounded sequence of what the network allows (valid or bogus values,
 * forged escrows, requests for another package with the same transaction ID), and may stop.
 *
 * T only changes its own state and answers; a party holds a signature only once it received it
 * and acted on it (the variables clientHasX / serverHasY are set by the parties, never by T).
 *
 * Fairness, checked when both parties have stopped:
 *   honest S:  if C may hold X (X still in the channel counts), then S holds Y
 *   honest C:  if S holds Y, then C holds X
 *
 * Compile-time switches: CHEAT_SERVER or CHEAT_CLIENT (one cheater); the deliberately broken
 * variants, each of which must yield a counterexample (test/fair/model.test.ts):
 *   BROKEN_ABORT_OVERRIDES     T's abort wins over an earlier resolve
 *   BROKEN_FAILED_RESOLVE      a client resolve that finds X's escrow bogus does not block S
 *   BROKEN_SKIP_ESCROW_CHECK   S sends X without checking the escrow of Y
 *   BROKEN_DROP_Y_IN_ABORT     S ignores the Y that T gives in answer to its abort (issue 13)
 *   BROKEN_CLIENT_ABORT        T lets the client abort (the responder must only resolve)
 *   BROKEN_UNSIGNED_ESCROW_X   T opens an escrow of X the server did not sign, and aborts on it
 *   BROKEN_KEY_BY_ID           T keys records by transaction ID, so a request for another package squats it
 *   BROKEN_RELEASE_AFTER_ABORT S releases X for a late escrow after an abort whose answer it lost
 */

mtype = { ESCROW_X, SIG_X, ESCROW_Y, SIG_Y };          /* S <-> C */
mtype = { ABORT, RESOLVE_S, RESOLVE_C, SQUAT };        /* to T */
mtype = { GOT_X, GOT_Y, ABORT_TOKEN, REFUSED };        /* from T */

#define NONE     0
#define ABORTED  1
#define RESOLVED 2

/* The quality of an escrow of X: signed by S and genuine, signed by S and bogus, not signed by S. */
#define EX_BOGUS    0
#define EX_GENUINE  1
#define EX_UNSIGNED 2

#define FROM_S 0
#define FROM_C 1

chan s2c = [3] of { mtype, byte };
chan c2s = [3] of { mtype, byte };
chan toT = [1] of { mtype, bit, bit, byte };           /* request, sender, valid signature, escrow of X */
chan tToS = [1] of { mtype };
chan tToC = [1] of { mtype };

bool clientHasX, serverHasY, sDone, cDone;
bool sHasEscrowY, sEscrowYvalid;   /* the escrow of Y that S checked (block 306) */
bool squatted;                     /* BROKEN_KEY_BY_ID: another package took this transaction's record */
byte tState = NONE;

/* A send that the lossy S-C channel may drop. */
inline lossy(ch, m, v) {
  if
  :: ch!m,v
  :: skip
  fi
}

active proctype TTP() {
  mtype req;
  bit from, valid;
  byte ex;
end:
  do
  :: toT?req,from,valid,ex ->
    atomic {
      if
      :: squatted -> if :: from == FROM_S -> tToS!REFUSED :: else -> tToC!REFUSED fi
      :: else ->
      if
      :: req == SQUAT ->                         /* another package, same transaction ID */
#ifdef BROKEN_KEY_BY_ID
        if :: tState == NONE -> squatted = true :: else -> skip fi;
#endif
        tToC!REFUSED                             /* keyed by L, and no server signature over it */
      :: req == ABORT && from == FROM_C ->       /* the responder never aborts */
#ifdef BROKEN_CLIENT_ABORT
        if
        :: tState == NONE -> tState = ABORTED; tToC!ABORT_TOKEN
        :: tState == ABORTED -> tToC!ABORT_TOKEN
        :: tState == RESOLVED -> tToC!GOT_X
        fi
#else
        tToC!REFUSED
#endif
      :: req == ABORT && from == FROM_S ->       /* signed by the originator */
        if
        :: tState == NONE -> tState = ABORTED; tToS!ABORT_TOKEN
        :: tState == ABORTED -> tToS!ABORT_TOKEN
        :: tState == RESOLVED ->
#ifdef BROKEN_ABORT_OVERRIDES
          tState = ABORTED; tToS!ABORT_TOKEN
#else
          tToS!GOT_Y
#endif
        fi
      :: req == RESOLVE_C ->                     /* C deposits Y and an escrow of X */
        if
        :: !valid -> tToC!REFUSED
        :: valid && tState == NONE && ex == EX_UNSIGNED ->
#ifdef BROKEN_UNSIGNED_ESCROW_X
          tState = ABORTED; tToC!ABORT_TOKEN     /* blames S for an escrow S never made */
#else
          tToC!REFUSED                           /* no server signature over L: no record */
#endif
        :: valid && tState == NONE && ex == EX_GENUINE -> tState = RESOLVED; tToC!GOT_X
        :: valid && tState == NONE && ex == EX_BOGUS ->
#ifndef BROKEN_FAILED_RESOLVE
          tState = ABORTED;                      /* S's signature proves it made the bad escrow */
#endif
          tToC!ABORT_TOKEN
        :: valid && tState == ABORTED -> tToC!ABORT_TOKEN      /* Y is never released after an abort */
        :: valid && tState == RESOLVED -> tToC!GOT_X
        fi
      :: req == RESOLVE_S ->                     /* S proves it is S, deposits X; T extracts Y */
        if
        :: !valid -> tToS!REFUSED
        :: valid && tState == NONE ->
          if
          :: sHasEscrowY && sEscrowYvalid -> tState = RESOLVED; tToS!GOT_Y
          :: else -> tToS!REFUSED                /* extraction fails: state unchanged */
          fi
        :: valid && tState == ABORTED -> tToS!ABORT_TOKEN
        :: valid && tState == RESOLVED -> tToS!GOT_Y
        fi
      fi
      fi
    }
  od
}

active proctype Server() {
  mtype r;
  byte v;
  byte steps = 0;
  byte tries = 0;
#ifdef CHEAT_SERVER
  do
  :: steps < 6 -> steps++;
    if
    :: lossy(s2c, ESCROW_X, EX_GENUINE)
    :: lossy(s2c, ESCROW_X, EX_BOGUS)            /* signed by S, but not an encryption of X */
    :: lossy(s2c, SIG_X, 1)
    :: lossy(s2c, SIG_X, 0)
    :: c2s?ESCROW_Y,v -> if :: !sHasEscrowY -> sHasEscrowY = true; sEscrowYvalid = v :: else -> skip fi
    :: c2s?SIG_Y,v -> if :: v -> serverHasY = true :: else -> skip fi
    :: toT!ABORT,FROM_S,1,0; tToS?r -> if :: r == GOT_Y -> serverHasY = true :: else -> skip fi
    :: toT!RESOLVE_S,FROM_S,1,0; tToS?r -> if :: r == GOT_Y -> serverHasY = true :: else -> skip fi
    :: toT!RESOLVE_S,FROM_S,0,0; tToS?r
    fi
  :: break
  od;
#else
  lossy(s2c, ESCROW_X, EX_GENUINE);             /* block 303: the signed escrow of X */
  if
  :: c2s?ESCROW_Y,v ->                          /* block 306 */
    sHasEscrowY = true; sEscrowYvalid = v;
#ifdef BROKEN_SKIP_ESCROW_CHECK
    goto sendX
#else
    if
    :: v -> goto sendX
    :: else -> goto abort                       /* block 307 */
    fi
#endif
  :: c2s?SIG_Y,v ->                             /* a first message without an escrow (it was lost) */
    if
    :: v -> serverHasY = true; lossy(s2c, SIG_X, 1); goto done   /* S holds Y: the package carries X */
    :: else -> goto abort
    fi
  :: true -> goto abort                         /* deadline: X never sent, so abort */
  fi;
sendX:                                          /* block 308; never abort after this */
  lossy(s2c, SIG_X, 1);
  if
  :: c2s?SIG_Y,v ->
    if
    :: v -> serverHasY = true; goto done
    :: else -> goto resolve
    fi
  :: true -> goto resolve                       /* Y lost or withheld */
  fi;
resolve:                                        /* retried while refused (with a growing delay in the code) */
  do
  :: toT!RESOLVE_S,FROM_S,1,0; tToS?r ->
    if
    :: r == GOT_Y -> serverHasY = true; break
    :: r == ABORT_TOKEN -> break
    :: r == REFUSED && tries < 2 -> tries++
    :: r == REFUSED && tries >= 2 -> break      /* reported as unsettled */
    fi
  od;
  goto done;
abort:                                          /* the intent is durable before the request leaves */
  do
  :: toT!ABORT,FROM_S,1,0; tToS?r ->
    if
    :: true ->                                  /* the answer arrives, and is applied */
      if
#ifndef BROKEN_DROP_Y_IN_ABORT
      :: r == GOT_Y -> serverHasY = true
#endif
      :: else -> skip
      fi;
      break
    :: tries < 1 -> tries++;                    /* the answer is lost: ask again */
      if
      :: c2s?ESCROW_Y,v ->                      /* a late escrow of Y */
#ifdef BROKEN_RELEASE_AFTER_ABORT
        if :: v -> sHasEscrowY = true; sEscrowYvalid = v; tries = 0; goto sendX :: else -> skip fi
#else
        skip                                    /* 409 E_ABORTING: no X until T answers */
#endif
      :: skip
      fi
    fi
  od;
done:
#endif
  sDone = true
}

active proctype Client() {
  mtype r;
  byte v;
  byte ex = EX_UNSIGNED;                        /* the escrow of X received, if any */
  byte steps = 0;
  bool ySent;
#ifdef CHEAT_CLIENT
  do
  :: steps < 6 -> steps++;
    if
    :: s2c?ESCROW_X,v -> ex = v
    :: s2c?SIG_X,v -> if :: v -> clientHasX = true :: else -> skip fi
    :: !ySent -> ySent = true; lossy(c2s, ESCROW_Y, 1)
    :: !ySent -> ySent = true; lossy(c2s, ESCROW_Y, 0)
    :: lossy(c2s, SIG_Y, 1)
    :: lossy(c2s, SIG_Y, 0)
    :: toT!RESOLVE_C,FROM_C,1,ex; tToC?r -> if :: r == GOT_X -> clientHasX = true :: else -> skip fi
    :: toT!RESOLVE_C,FROM_C,1,EX_UNSIGNED; tToC?r -> if :: r == GOT_X -> clientHasX = true :: else -> skip fi   /* a forged escrow of X */
    :: toT!RESOLVE_C,FROM_C,0,ex; tToC?r
    :: toT!SQUAT,FROM_C,1,EX_UNSIGNED; tToC?r    /* the same transaction ID with a package S never made */
    :: toT!ABORT,FROM_C,1,0; tToC?r -> if :: r == GOT_X -> clientHasX = true :: else -> skip fi
    fi
  :: break
  od;
#else
  if
  :: s2c?ESCROW_X,v -> ex = v                   /* block 304: C checks S's signature on it, cannot check inside */
  :: true -> goto done                          /* nothing came: just stop */
  fi;
  lossy(c2s, ESCROW_Y, 1);                      /* block 305: the verifiable escrow of Y */
  if
  :: s2c?SIG_X,v ->                             /* block 309 */
    if
    :: v -> clientHasX = true; lossy(c2s, SIG_Y, 1); goto done   /* block 311 */
    :: else -> goto resolve                     /* block 310 */
    fi
  :: true -> goto resolve                       /* X lost or withheld */
  fi;
resolve:
#ifdef BROKEN_CLIENT_ABORT
  if
  :: toT!ABORT,FROM_C,1,0; tToC?r ->            /* the client gives up at T instead of resolving ... */
    if :: r == GOT_X -> clientHasX = true :: else -> skip fi;
    if :: s2c?SIG_X,1 -> clientHasX = true :: skip fi;   /* ... and a late X still reaches it */
    goto done
  :: true -> skip
  fi;
#endif
  toT!RESOLVE_C,FROM_C,1,ex; tToC?r;
  if
  :: r == GOT_X -> clientHasX = true; lossy(c2s, SIG_Y, 1)   /* and then the first message */
  :: else -> skip
  fi;
done:
#endif
  cDone = true
}

active proctype Fairness() {
  (sDone && cDone) ->
  /* A cheating client may still read an X that is waiting in the channel. */
  if
  :: s2c??[SIG_X,1] -> clientHasX = true
  :: else -> skip
  fi;
#ifndef CHEAT_SERVER
  assert(!clientHasX || serverHasY);            /* the server is honest */
#endif
#ifndef CHEAT_CLIENT
  assert(!serverHasY || clientHasX);            /* the client is honest */
#endif
}
