-- The aging buckets partition the receivables: they add up to the outstanding total.
select currency
from {{ ref('ar_aging') }}
where bucket_0_30_minor + bucket_31_60_minor + bucket_61_90_minor + bucket_90_plus_minor
      <> outstanding_minor
