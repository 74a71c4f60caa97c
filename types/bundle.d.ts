/** Defined (true) by scripts/bundle-node.mjs in its bundles; absent when running from sources. */
declare const CONVBN_NODE_BUNDLE: boolean | undefined;
