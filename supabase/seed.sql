-- Demo data: loaded once by `npm start` (and by `supabase db reset`). Two users and an admin;
-- the demo user owns two agents, the first with a working set two short of its quota.
-- Deterministic (no random()), so the README's examples show the same numbers everywhere.

insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data) values
  ('d0000000-0000-4000-8000-000000000001', 'dana@demo.test', '{}', '{"name": "Dana Demo"}'),
  ('d0000000-0000-4000-8000-000000000002', 'omar@demo.test', '{}', '{"name": "Omar Other"}'),
  ('a0000000-0000-4000-8000-000000000001', 'ada@support.test', '{"role": "internal_admin"}', '{"name": "Ada Admin"}')
on conflict (id) do nothing;

insert into public.agents (id, user_id, name, email, phone, max_working_leads, created_at) values
  ('agent-dana-1', 'd0000000-0000-4000-8000-000000000001', 'Dana''s Closer', 'closer@demo.test', '+1 555 0100', 50, now() - interval '200 days'),
  ('agent-dana-2', 'd0000000-0000-4000-8000-000000000001', 'Dana''s Nurturer', 'nurture@demo.test', '+1 555 0101', 25, now() - interval '100 days'),
  ('agent-omar-1', 'd0000000-0000-4000-8000-000000000002', 'Omar''s Agent', 'agent@omar.test', '+1 555 0200', 50, now() - interval '150 days')
on conflict (id) do nothing;

-- 150 leads (and one more at the end): 100 for agent-dana-1, 30 for agent-dana-2, 20 for Omar; spread over ~120 days.
insert into public.leads (agent_id, user_id, name, email, phone, status, priority, budget, timeline,
                          address, notes, preferred_contact_method, is_decision_maker, metadata, created_at)
select
  case when g <= 100 then 'agent-dana-1' when g <= 130 then 'agent-dana-2' else 'agent-omar-1' end,
  case when g <= 130 then 'd0000000-0000-4000-8000-000000000001'::uuid
       else 'd0000000-0000-4000-8000-000000000002'::uuid end,
  (array['John', 'Maria', 'Wei', 'Aisha', 'Lucas', 'Sofia', 'Kenji', 'Fatima', 'Noah', 'Elena'])[1 + g % 10]
    || ' ' || (array['Smith', 'Garcia', 'Chen', 'Khan', 'Silva', 'Rossi', 'Sato', 'Ali', 'Brown', 'Novak'])[1 + (g / 10) % 10],
  'lead' || g || '@example.com',
  '+1 555 ' || lpad((1000 + g)::text, 4, '0'),
  (array['new', 'contacted', 'qualified', 'converted', 'new', 'contacted'])[1 + g % 6],
  (array['low', 'medium', 'high'])[1 + g % 3],
  (array['$250k-$400k', '$400k-$600k', '$600k+'])[1 + g % 3],
  (array['0-3 months', '3-6 months', '6-12 months'])[1 + g % 3],
  jsonb_build_object('city', (array['Austin', 'Denver', 'Seattle', 'Miami'])[1 + g % 4], 'state',
                     (array['TX', 'CO', 'WA', 'FL'])[1 + g % 4]),
  case when g % 7 = 0 then 'Asked about school districts' end,
  (array['email', 'phone', 'sms'])[1 + g % 3],
  g % 4 = 0,
  jsonb_build_object('source', (array['website', 'referral', 'open-house'])[1 + g % 3]),
  now() - (g * interval '19 hours')
from generate_series(1, 150) g
where not exists (select 1 from public.leads);

-- agent-dana-1 works 48 of its 50 slots: its newest 48 leads, every 5th one muted.
insert into public.working_leads (agent_id, lead_id, muted, added_at)
select 'agent-dana-1', l.id, row_number() over (order by l.created_at desc) % 5 = 0,
       now() - (row_number() over (order by l.created_at desc)) * interval '1 hour'
from (select id, created_at from public.leads where agent_id = 'agent-dana-1'
      order by created_at desc limit 48) l
where not exists (select 1 from public.working_leads)
on conflict do nothing;

-- agent-dana-2 works 5 of its 25.
insert into public.working_leads (agent_id, lead_id)
select 'agent-dana-2', l.id
from (select id from public.leads where agent_id = 'agent-dana-2' order by created_at desc limit 5) l
where not exists (select 1 from public.working_leads where agent_id = 'agent-dana-2')
on conflict do nothing;

-- The lead id of seed 000's guide (Lofty's working leads), so its curl lines run unchanged against
-- the demo data through the REST door: Dana's, on agent-dana-1, not yet in the working set. Last,
-- so it is not among the newest 48 worked above; its explicit id stays far above the identity's.
insert into public.leads (id, agent_id, user_id, name, email, phone, status, priority, created_at)
overriding system value
select 789012345678, 'agent-dana-1', 'd0000000-0000-4000-8000-000000000001', 'Lofty Example',
       'lead789012345678@example.com', '+1 555 0789', 'new', 'high', now() - interval '150 days'
where not exists (select 1 from public.leads where id = 789012345678);
