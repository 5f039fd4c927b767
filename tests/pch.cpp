// Holds the precompiled header every test reuses.
