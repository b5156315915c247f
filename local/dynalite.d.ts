/**
 * Types for `dynalite` (pure-JS DynamoDB emulator), which ships none.
 * Only what local/emulators.ts uses is declared.
 */
declare module 'dynalite' {
  import type { Server } from 'node:http';

  /** Options of `dynalite(options)`; all optional. */
  interface DynaliteOptions {
    /** Milliseconds a new table stays CREATING (default 500). */
    createTableMs?: number;
    /** Milliseconds a table stays DELETING (default 500). */
    deleteTableMs?: number;
    /** Milliseconds a table stays UPDATING (default 500). */
    updateTableMs?: number;
    /** Maximum item size in KB (default 400, as in DynamoDB). */
    maxItemSizeKb?: number;
    /** LevelDB directory; in memory when absent. */
    path?: string;
    verbose?: boolean;
    debug?: boolean;
  }

  /** Returns an unstarted HTTP server speaking the DynamoDB JSON protocol. */
  function dynalite(options?: DynaliteOptions): Server;
  export = dynalite;
}
