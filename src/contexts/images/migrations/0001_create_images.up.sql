create schema if not exists images;

-- No foreign key to accounts: the images context owns its data and knows accounts only by id.
create table images.account_images (
  account_id uuid primary key,
  url text not null,
  updated timestamptz not null default now()
);
