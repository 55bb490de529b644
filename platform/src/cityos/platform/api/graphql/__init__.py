"""GraphQL plumbing shared by the feature slices: scalars, enums, context, errors, schema."""
