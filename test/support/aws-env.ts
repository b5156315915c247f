/**
 * Jest setup: dummy AWS keys in the environment (unless set), as the local starter does.
 * lib/ never configures credentials: its clients use the SDK's default provider chain,
 * which in AWS finds the function's role and here finds these (the stand-ins accept any
 * keys). Tests that talk to a fake (SSM) without starting the stand-ins need them too.
 */
import { useStandInCredentials } from '../../local/credentials';

useStandInCredentials();
