/**
 * The qtm server's API as the client reaches it: JSON over HTTPS (../http/client.ts) on one
 * connection per transaction, at the paths of ../protocol/routes.ts.
 */
export { JsonHttpsClient as QtmApi, ServerError, ServerUnreachableError, isServerAuthenticationFailure } from '../http/client.js';
