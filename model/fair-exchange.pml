/*
 * The fair exchange of issue 6 (patent figure 3, Abort / Resolve), for spin.
 *
 * Parties: the server S (originator; signature X), the client C (the card's signature Y), the
 * trusted third party T. The S-C channel loses messages; the channels to and from T are
 * reliable (the optimistic protocol's assumption). Every wait may time out at any moment. At
 * most one party cheats: a cheater does any bounded sequence of protocol actions, in any order,
 * with valid or bogus values, and may stop at any time.
 *
 * Fairness, checked when both parties have stopped:
 *   honest S:  if C may hold X, then S holds Y
 *   honest C:  if S holds Y, then C holds X
 *
 * Compile-time switches: CHEAT_SERVER or CHEAT_CLIENT (one cheater); the deliberately broken
 * variants, each of which must yield a counterexample:
 *   BROKEN_ABORT_OVERRIDES   T's abort wins over an earlier resolve
 *   BROKEN_FAILED_RESOLVE    a client resolve that finds X's escrow bogus does not block S
 *   BROKEN_SKIP_ESCROW_CHECK S sends X without checking the escrow of Y
 */

mtype = { ESCROW_X, SIG_X, ESCROW_Y, SIG_Y };          /* S <-> C */
mtype = { ABORT, RESOLVE_S, RESOLVE_C };               /* to T */
mtype = { GOT_X, GOT_Y, ABORT_TOKEN, REFUSED };        /* from T */

#define NONE     0
#define ABORTED  1
#define RESOLVED 2

chan s2c = [3] of { mtype, bit };
chan c2s = [3] of { mtype, bit };
chan toT = [2] of { mtype, bit };
chan tToS = [2] of { mtype };
chan tToC = [2] of { mtype };

bool clientHasX, serverHasY, sDone, cDone;
/* Each party deposits with T the other's escrow as it received it (T checks its label). */
bool cHasEscrowX, cEscrowXvalid;   /* the escrow of X that C received, and whether it is genuine */
bool sHasEscrowY, sEscrowYvalid;   /* the escrow of Y that S received, and whether it is genuine */
bool vYsent;
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
  bit valid;
end:
  do
  :: toT?req,valid ->
    atomic {
      if
      :: req == ABORT ->                        /* originator only */
        if
        :: tState == NONE -> tState = ABORTED; tToS!ABORT_TOKEN
        :: tState == ABORTED -> tToS!ABORT_TOKEN
        :: tState == RESOLVED ->
#ifdef BROKEN_ABORT_OVERRIDES
          tState = ABORTED; tToS!ABORT_TOKEN
#else
          serverHasY = true; tToS!GOT_Y
#endif
        fi
      :: req == RESOLVE_C ->                    /* C deposits Y; valid says whether it is */
        if
        :: !valid -> tToC!REFUSED
        :: valid && tState == NONE && !cHasEscrowX -> tToC!REFUSED     /* nothing to decrypt */
        :: valid && tState == NONE && cHasEscrowX ->
          if
          :: cEscrowXvalid -> tState = RESOLVED; clientHasX = true; tToC!GOT_X
          :: else ->
#ifndef BROKEN_FAILED_RESOLVE
            tState = ABORTED;
#endif
            tToC!ABORT_TOKEN
          fi
        :: valid && tState == ABORTED -> tToC!ABORT_TOKEN
        :: valid && tState == RESOLVED -> clientHasX = true; tToC!GOT_X
        fi
      :: req == RESOLVE_S ->                    /* S deposits X; T extracts Y from C's escrow */
        if
        :: !valid -> tToS!REFUSED
        :: valid && tState == NONE ->
          if
          :: sHasEscrowY && sEscrowYvalid -> tState = RESOLVED; serverHasY = true; tToS!GOT_Y
          :: else -> tToS!REFUSED               /* extraction fails: state unchanged */
          fi
        :: valid && tState == ABORTED -> tToS!ABORT_TOKEN
        :: valid && tState == RESOLVED -> serverHasY = true; tToS!GOT_Y
        fi
      fi
    }
  od
}

active proctype Server() {
  mtype r;
  bit v;
  byte steps = 0;
#ifdef CHEAT_SERVER
  do
  :: steps < 6 -> steps++;
    if
    :: lossy(s2c, ESCROW_X, 1)
    :: lossy(s2c, ESCROW_X, 0)
    :: lossy(s2c, SIG_X, 1)
    :: lossy(s2c, SIG_X, 0)
    :: c2s?ESCROW_Y,v -> if :: !sHasEscrowY -> sHasEscrowY = true; sEscrowYvalid = v :: else -> skip fi
    :: c2s?SIG_Y,v -> if :: v -> serverHasY = true :: else -> skip fi
    :: toT!ABORT,0; tToS?r
    :: toT!RESOLVE_S,1; tToS?r
    :: toT!RESOLVE_S,0; tToS?r
    fi
  :: break
  od;
#else
  lossy(s2c, ESCROW_X, 1);                      /* block 303: an ordinary escrow of X */
  if
  :: c2s?ESCROW_Y,v ->                           /* block 306 */
    sHasEscrowY = true; sEscrowYvalid = v;
#ifdef BROKEN_SKIP_ESCROW_CHECK
    goto sendX
#else
    if
    :: v -> goto sendX
    :: else -> goto abort                       /* block 307 */
    fi
#endif
  :: true -> goto abort                         /* timeout: X never sent, so abort */
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
resolve:
  toT!RESOLVE_S,1; tToS?r; goto done;
abort:
  toT!ABORT,0; tToS?r;
done:
#endif
  sDone = true
}

active proctype Client() {
  mtype r;
  bit v;
  byte steps = 0;
#ifdef CHEAT_CLIENT
  do
  :: steps < 6 -> steps++;
    if
    :: s2c?ESCROW_X,v -> if :: !cHasEscrowX -> cHasEscrowX = true; cEscrowXvalid = v :: else -> skip fi
    :: !vYsent -> vYsent = true; lossy(c2s, ESCROW_Y, 1)
    :: !vYsent -> vYsent = true; lossy(c2s, ESCROW_Y, 0)
    :: s2c?SIG_X,v -> if :: v -> clientHasX = true :: else -> skip fi
    :: lossy(c2s, SIG_Y, 1)
    :: lossy(c2s, SIG_Y, 0)
    :: toT!RESOLVE_C,1; tToC?r
    :: toT!RESOLVE_C,0; tToC?r
    fi
  :: break
  od;
#else
  if
  :: s2c?ESCROW_X,v -> cHasEscrowX = true; cEscrowXvalid = v   /* block 304: C cannot check it, only keep it */
  :: true -> goto done                          /* nothing sent yet: just stop */
  fi;
  vYsent = true;                                /* block 305: verifiable escrow of Y */
  lossy(c2s, ESCROW_Y, 1);
  if
  :: s2c?SIG_X,v ->                             /* block 309 */
    if
    :: v -> clientHasX = true; lossy(c2s, SIG_Y, 1); goto done   /* block 311 */
    :: else -> goto resolve                     /* block 310 */
    fi
  :: true -> goto resolve                       /* X lost or withheld; never abort now */
  fi;
resolve:
  toT!RESOLVE_C,1; tToC?r;
done:
#endif
  cDone = true
}

active proctype Fairness() {
  (sDone && cDone) ->
  /* A cheating client may still read an X that is waiting in the channel. */
  if
  :: s2c?[SIG_X,1] -> clientHasX = true
  :: else -> skip
  fi;
#ifndef CHEAT_SERVER
  assert(!clientHasX || serverHasY);            /* the server is honest */
#endif
#ifndef CHEAT_CLIENT
  assert(!serverHasY || clientHasX);            /* the client is honest */
#endif
}
