drop table if exists images.account_images;
drop schema if exists images;
