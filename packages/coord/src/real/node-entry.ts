/** Process entry point of one ensemble member (what the harness and `dsys coord up` spawn). */
import { runCoordMain } from './main.js';

await runCoordMain();
