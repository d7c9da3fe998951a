drop table payments.simulated_charges;
drop schema payments;
